"""rtd's built-in tools and components."""
