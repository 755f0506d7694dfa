"""The Docker-less local stack: template.yaml on an embedded moto server, with a local Lambda runtime.

`python -m infra` runs it; infra.template reads the template, infra.provision creates its resources,
infra.runtime runs its functions (infra.functions, infra.gateway, infra.event_sources), and
infra.testing starts it for tests.
"""
