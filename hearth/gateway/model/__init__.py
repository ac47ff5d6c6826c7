"""One model's route: its queue bound, holding cold requests and releasing them in waves, its demand, and
its fallback."""
