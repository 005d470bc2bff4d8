import sys

# `mail` is the operators' email commands (tillit/mail.py), `recount` the score recount (tillit/recount.py),
# `dlq` the dead letters (tillit/dlq.py); everything else is tillit/cli.py.
if sys.argv[1:2] == ["mail"]:
    from tillit.mail import main as mail_main

    mail_main(sys.argv[2:])
elif sys.argv[1:2] == ["recount"]:
    from tillit.recount import main as recount_main

    recount_main(sys.argv[2:])
elif sys.argv[1:2] == ["dlq"]:
    from tillit.dlq import main as dlq_main

    dlq_main(sys.argv[2:])
else:
    from tillit.cli import main

    main()
