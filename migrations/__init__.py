"""Alembic migrations; run through ``ruta db upgrade`` (see ``ruta.migrate``)."""
