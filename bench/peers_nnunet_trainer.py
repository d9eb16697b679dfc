"""nnU-Net v2's own trainer with its epochs fitted to a wall-clock deadline (installed by ``bench/peers.py`` into the
nnU-Net virtual environment, where nnU-Net finds trainers by class name).

Everything is nnU-Net's default (network, plans, augmentation, loss, SGD with Nesterov momentum, poly learning rate
with exponent 0.9 over the epochs, checkpoint_final for prediction) except the length of the schedule: the run
stops at ``NNUNET_DEADLINE`` (a ``time.time()`` value set by the benchmark when the budget's clock started, before
planning and preprocessing). An epoch has ``NNUNET_ITERATIONS`` training iterations (nnU-Net's 250 take longer
than a whole CPU budget; fewer when 20 epochs of them would not fit at the time the second iteration took) and a
fifth as many validation iterations; after every epoch the number of epochs is
re-estimated from the measured epoch times, and the poly schedule runs to that number, so the learning rate reaches
its end when the time does. The final validation pass of ``nnUNetv2_train`` is skipped (the benchmark predicts the
test images itself).
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


#: epochs the poly schedule gets at least, when the iterations of an epoch have to be fewer to fit them
MIN_EPOCHS = 20


class nnUNetTrainerWallClock(nnUNetTrainer):  # noqa: N801 (nnU-Net's naming)
    """nnU-Net's trainer, its epochs fitted to the deadline in ``NNUNET_DEADLINE``."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")) -> None:  # nnU-Net records these by name
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.deadline = float(os.environ["NNUNET_DEADLINE"])
        self.num_iterations_per_epoch = int(os.environ.get("NNUNET_ITERATIONS", "50"))
        self.num_val_iterations_per_epoch = max(1, self.num_iterations_per_epoch // 5)
        self.num_epochs = 1000  # provisional: refitted after every epoch
        self.epoch_seconds: list[float] = []

    def _refit(self) -> None:
        """The epochs in all: those done, plus as many as fit before the deadline at the median epoch time."""
        epoch = float(np.median(self.epoch_seconds[-5:]))
        left = self.deadline - time.time()
        self.num_epochs = self.current_epoch + max(0, int(left // epoch))
        self.lr_scheduler.max_steps = max(self.num_epochs, 1)

    def _fit_epoch_length(self, step_seconds: float) -> None:
        """Fewer iterations per epoch when ``MIN_EPOCHS`` epochs of the configured length would not fit in the time
        left at ``step_seconds`` a training iteration (a validation iteration counted alike): large 2d patches on a
        CPU take 15-20 s an iteration, and one epoch of 25 then left a third of the budget unused."""
        left = self.deadline - time.time()
        fitting = int(left / (MIN_EPOCHS * step_seconds * 1.2))
        self.num_iterations_per_epoch = max(1, min(self.num_iterations_per_epoch, fitting))
        self.num_val_iterations_per_epoch = max(1, self.num_iterations_per_epoch // 5)
        self.print_to_log_file(f"wall-clock budget: {step_seconds:.1f} s per iteration, "
                               f"{self.num_iterations_per_epoch} iterations per epoch")

    def run_training(self) -> None:
        self.on_train_start()
        while self.current_epoch < self.num_epochs:
            started = time.time()
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs, step = [], 0
            while step < self.num_iterations_per_epoch:
                step_started = time.time()
                outputs.append(self.train_step(next(self.dataloader_train)))
                step += 1
                if self.current_epoch == 0 and step == 2:  # the second step: the first one warms up
                    self._fit_epoch_length(time.time() - step_started)
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                val = [self.validation_step(next(self.dataloader_val))
                       for _ in range(self.num_val_iterations_per_epoch)]
                self.on_validation_epoch_end(val)
            self.on_epoch_end()
            self.epoch_seconds.append(time.time() - started)
            self._refit()
            self.print_to_log_file(f"wall-clock budget: {self.num_epochs} epochs in all fit before the deadline")
        self.on_train_end()

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        self.print_to_log_file("final validation skipped: the benchmark predicts the test images itself")
