"""CSMS-initiated services: what the CSMS starts on its own, as opposed to the handlers of
:mod:`csms.blocks` that answer a station. Charging control (K, Q) commands stations' power for
dispatch, the HTTP API and the CLI; certificate renewal (A02) asks a station for a new
certificate before its own expires. Both are typed against :class:`csms.blocks.context.Central`.
"""
