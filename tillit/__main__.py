import sys

# `mail` is the operators' email commands (tillit/mail.py); everything else is tillit/cli.py.
if sys.argv[1:2] == ["mail"]:
    from tillit.mail import main as mail_main

    mail_main(sys.argv[2:])
else:
    from tillit.cli import main

    main()
