"""Security functional block (A, M): pure certificate logic."""
