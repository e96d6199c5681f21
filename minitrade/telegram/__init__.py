"""Control minitrade from a phone: a Telegram bot for the chats `minitrade.yaml` allows.

`bot` is the python-telegram-bot wiring (gate, confirmations, audit, the daemon's thread), `views`
the read-only answers (/status, /positions, /orders), `actions` the acting commands (/fill,
/suspend, /resume, /ib_login) as proposals confirmed with inline buttons. Every command calls the
same functions as the CLI; none holds SQL of its own. See docs/telegram.md.
"""
