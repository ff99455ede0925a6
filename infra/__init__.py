"""Local dev/test infrastructure: real servers as loopback processes (DESIGN section 8).

``infra.services`` has one class per server (Tansu, moto, Redis, Prometheus),
``infra.stack`` keeps a detached dev stack across CLI invocations, ``infra.cli`` is the
``ticktape dev`` command group.
"""
