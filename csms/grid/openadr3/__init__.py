"""OpenADR 3.0.1 VEN: a client of a utility's or aggregator's VTN (see :mod:`.ven`).

* :mod:`.models` - the specification's objects (pydantic, spec field names);
* :mod:`.client` - the REST client (OAuth2 client credentials, retries, errors);
* :mod:`.mapping` - pure translation: SIMPLE / PRICE signals, delivery and forecast reports;
* :mod:`.ven` - the service part (registration, subscription + polling, reports, outages);
* :mod:`.callback` - the webhook the VTN calls (``POST /grid/openadr3/notify``).
"""
