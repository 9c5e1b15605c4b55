"""Development and deployment tooling: gateway config, readiness banner, dependency probes.

Modules here run with nothing but the standard library and ``ticketing.config`` so that
``deploy/setup.sh`` can use them before the virtualenv exists.
"""
