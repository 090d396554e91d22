"""The demo and the test harness: a CSMS with a bundled simulated fleet on one machine.

Not part of the product's dispatch path (``csms.dispatch`` holds planning, control and
reporting only): :mod:`csms.demo.site` starts a CSMS and simulated V2G stations over real
sockets for the demo, the end-to-end tests and the benchmarks; :mod:`csms.demo.event` is
``csms demo``, a grid export event run on that site.
"""
