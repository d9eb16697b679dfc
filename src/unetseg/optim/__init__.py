"""Optimizers and learning-rate schedules, each a registry (:mod:`.optimizers`, :mod:`.schedules`)."""
