"""The base class every segmentation network derives from: input-size rules and the recipe to rebuild it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class SegmentationModel(nn.Module):
    """A network mapping (N, in_channels, H, W) images to (N, num_classes, H', W') logits.

    Subclasses set ``in_channels`` and ``num_classes`` and implement :meth:`_forward` (the network itself) and
    :meth:`output_size` (which raises ValueError for an input size the network does not accept). :meth:`forward`
    checks the input against these rules, then runs :meth:`_forward`. ``create_model`` records the registry name
    and keyword arguments in :attr:`config`, which is all a checkpoint needs to rebuild the network.
    """

    in_channels: int
    num_classes: int
    config: dict[str, Any]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits of the batch ``x``, after :meth:`check_input`.

        The check is skipped while the network is traced (``torch.jit.trace``) or compiled (``torch.compile``,
        ``torch.export`` and the ONNX exporter built on it): the traced graph then holds no Python size checks.

        Args:
            x: images (N, in_channels, H, W) with sides the network accepts.

        Returns:
            Logits (N, num_classes, H', W'), H' = :meth:`output_size` (H); a network with several training heads
            may return a list of them in training mode.

        Raises:
            ValueError: ``x`` has the wrong number of dimensions or channels, or a side the network does not take.
        """
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            self.check_input(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """The network's computation on an input already checked by :meth:`forward`."""
        raise NotImplementedError

    def output_size(self, input_size: int) -> int:
        """Side length of the output for an input of side ``input_size``; ValueError if the size is not accepted."""
        raise NotImplementedError

    def is_valid_input(self, input_size: int) -> bool:
        """True when the network accepts an input of side ``input_size``."""
        try:
            self.output_size(input_size)
        except ValueError:
            return False
        return True

    def input_size_for(self, output_size: int) -> int:
        """Smallest accepted input side whose output covers at least ``output_size`` pixels."""
        if output_size < 1:
            raise ValueError(f"output_size must be >= 1, got {output_size}")
        size = output_size
        while True:
            if self.is_valid_input(size) and self.output_size(size) >= output_size:
                return size
            size += 1

    def margin(self, input_size: int) -> int:
        """Pixels lost on each side: ``(input_size - output_size(input_size)) // 2`` (0 for same padding)."""
        return (input_size - self.output_size(input_size)) // 2

    def input_size_rule(self) -> str:
        """A one-line human description of the accepted input sizes."""
        valid = [s for s in range(1, 1200) if self.is_valid_input(s)][:3]
        return "accepted input sides: " + ", ".join(f"{s}->{self.output_size(s)}" for s in valid) + ", ..."

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError with the expected sizes when ``x`` cannot go through the network."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        for side in x.shape[-2:]:
            if not self.is_valid_input(int(side)):
                raise ValueError(
                    f"input side {int(side)} is not accepted: {self.input_size_rule()}; "
                    f"nearest accepted size >= {int(side)} is {self.input_size_for(int(side))}"
                )


class SameSizeModel(SegmentationModel):
    """A network whose output has the input's size and which takes any positive multiple of ``size_step``
    (``2**depth`` for ``depth`` 2x2 poolings). Subclasses set :attr:`size_step`."""

    size_step: int

    def output_size(self, input_size: int) -> int:
        """``input_size`` itself when it is a positive multiple of :attr:`size_step`; ValueError otherwise."""
        if input_size < self.size_step or input_size % self.size_step:
            raise ValueError(f"input side {input_size} is not a positive multiple of {self.size_step}")
        return input_size

    def input_size_rule(self) -> str:
        return f"multiple of {self.size_step}; output size == input size"
