"""Ways to run a study's trials. ``ray_tune`` is the one runner; it alone imports Ray."""
