"""A local AWS for tests and demos: ECR backed by a real OCI registry, moto for the rest."""
