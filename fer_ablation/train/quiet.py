"""One line per event in a run's log: third-party output a user cannot act on is dropped at its source.

- Lightning adds its own console handler when it is imported before logging is configured, and
  Hydra's job logging then prints every Lightning INFO line a second time through the root logger:
  Lightning's handler goes, so each line is printed once, in Hydra's format.
- Lightning's "try installing litlogger" tip (an advertisement) is filtered from Lightning's logger.
- Lightning's internal `isinstance(treespec, LeafSpec)` deprecation warning (raised inside Lightning
  by a newer torch; nothing in the suite can change it) is ignored for that message and module only.

Every other warning and log line is left alone.
"""

from __future__ import annotations

import logging
import warnings

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


class _DropAdvertisement(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


_DROP_ADVERTISEMENT = _DropAdvertisement()


def quiet_third_party() -> None:
    """Apply the filters above; idempotent, call once per process before training starts."""
    root_has_handlers = bool(logging.getLogger().handlers)
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if root_has_handlers:
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:
                    logger.removeHandler(handler)
            logger.propagate = True
    for logger in (logging.getLogger("lightning.pytorch.utilities.rank_zero"),
                   logging.getLogger("lightning.pytorch")):
        if _DROP_ADVERTISEMENT not in logger.filters:
            logger.addFilter(_DROP_ADVERTISEMENT)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)",
                            module=r"lightning\.pytorch\.utilities\._pytree")
