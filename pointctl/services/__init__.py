"""Services: keyword-only, session-first functions holding every rule of pointctl.

They never commit (the command owns the transaction) and never print; they return plain
dicts and lists ready to render, and raise ``PointctlError`` subclasses.
"""
