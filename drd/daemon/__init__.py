"""The site daemon: lifecycle, loops and their supervision."""
