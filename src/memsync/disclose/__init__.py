"""Disclosure: the vault as one app sees it (`access.AppSession`), with its scope
enforced and everything it is given recorded in the ledger."""
