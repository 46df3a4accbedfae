"""The driver's handles on the Ray actors (the actor classes live in `actors/`): starting them in their bundles,
spreading work over them, restarting the dead."""
