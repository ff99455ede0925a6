"""Local dev/test infrastructure: real servers as loopback processes (docs/architecture.md, "Tests").

``ticktape.infra.devstack.services`` has one class per server (Apache Kafka and QuestDB from
Maven Central, Tansu, moto, Redis, Prometheus; the JVM ones in ``kafka`` and ``questdb``,
their jars fetched by ``jars``), ``ticktape.infra.devstack.stack`` keeps a detached dev stack
across CLI invocations, ``ticktape.infra.devstack.cli`` is the ``ticktape dev`` command group.
"""
