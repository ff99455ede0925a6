"""Local dev/test infrastructure: real servers as loopback processes (docs/architecture.md, "Tests").

``ticktape.infra.devstack.services`` has one class per server (Tansu, moto, Redis, Prometheus),
``ticktape.infra.devstack.stack`` keeps a detached dev stack across CLI invocations, ``ticktape.infra.devstack.cli`` is the
``ticktape dev`` command group.
"""
