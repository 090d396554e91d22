"""Cluster mode: several ``csms serve`` nodes on one PostgreSQL and one NATS server.

* :mod:`~csms.cluster.registry` - node leases and the station connection registry (NATS KV);
* :mod:`~csms.cluster.forward` - commands to stations held by other nodes (NATS request-reply),
  behind :class:`csms.central.StationRouter`;
* :mod:`~csms.cluster.events` - station events and live station state published on the broker
  for every node (:mod:`~csms.cluster.state`: the state as JSON and back);
* :mod:`~csms.cluster.leader` - the one dispatch controller, elected with a PostgreSQL advisory lock,
  starting from the schedules sent and the meter readings stored;
* :mod:`~csms.cluster.node` - the service part that wires them into ``csms serve``;
* :mod:`~csms.cluster.wire` - the messages (pure: JSON in, typed errors out).
"""
