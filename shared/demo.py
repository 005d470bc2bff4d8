"""Demo users for development: seeded by the people service, offered by the development sign-in."""

from shared.auth import Claims

DEMO_USERS: tuple[Claims, ...] = (
    Claims(sub="demo-ada", name="Ada Lovelace", email="ada@tillit.example", locale="en", groups=["engineering"]),
    Claims(sub="demo-kari", name="Kari Nordmann", email="kari@tillit.example", locale="nb", groups=["engineering"]),
    Claims(sub="demo-ola", name="Ola Nordmann", email="ola@tillit.example", locale="nb", groups=["sales"]),
    Claims(sub="demo-grace", name="Grace Hopper", email="grace@tillit.example", locale="en", groups=["leaders"]),
)
