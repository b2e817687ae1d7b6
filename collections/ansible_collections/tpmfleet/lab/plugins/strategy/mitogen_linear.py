# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mitogen's linear strategy, found through ansible.cfg's strategy_plugins.

Opt-in (ANSIBLE_STRATEGY=tpmfleet.lab.mitogen_linear): on the emulated lab it runs the same
plays about 4-5 times faster than the default strategy, which stays the
default and is what users get. Needs the `mitogen` package (requirements.txt).
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: mitogen_linear
short_description: Mitogen's linear strategy, for the lab and the benchmarks (opt-in)
description:
  - Ansible's linear strategy run over Mitogen's connection (the C(mitogen) package), found through
    C(ansible.cfg)'s C(strategy_plugins) of a checkout. Opt-in with C(ANSIBLE_STRATEGY=tpmfleet.lab.mitogen_linear);
    Ansible's own strategy stays the default and is what users get (see C(docs/performance.md)).
author: tpmfleet contributors (@tpmfleet)
requirements:
  - mitogen (requirements.txt)
"""

try:
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy
except ImportError as exc:  # pragma: no cover - only without the mitogen package
    raise ImportError("the mitogen_linear strategy needs the mitogen package: pip install -r requirements.txt") from exc

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):
    """Linear strategy with Mitogen's connection multiplexing."""
