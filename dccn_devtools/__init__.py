"""Dev-only tooling (test harnesses). No service imports this package; it is not installed with them."""
