"""What the two HTTP functions (handlers/api.py, handlers/status.py) share: the resolver with every route
(routes.py), the one place domain errors become HTTP (resolver.py), request bodies and response schemas."""
