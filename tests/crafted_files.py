"""Crafted data files for the tests that check no data file can run code."""


class RunsACommand:
    """Pickles as a call of ``os.system("touch MARKER")``, as an attack would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))
