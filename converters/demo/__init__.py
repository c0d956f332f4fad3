"""``manage.py demo``'s parts: its processes (started, checked, stopped) and its report (pure)."""
