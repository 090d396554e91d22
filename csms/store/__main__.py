"""``python -m csms.store --url URL {upgrade,downgrade,current,revision}``: see :mod:`csms.store.migrate`."""

from .migrate import main

main()
