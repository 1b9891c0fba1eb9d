"""Hardware profiles of the MCUs in the fleet, with the datasheet source of every constant.

A profile bounds what a node may do: the model must fit its RAM and flash, and every MAC and
every radio byte costs energy. Energy per MAC is derived from the core's active current at its
clock and a sustained MAC rate, so it is an estimate, documented as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainml.device.radio import RADIOS, Radio
from chainml.errors import ConfigError


@dataclass(frozen=True)
class HardwareProfile:
    """One device class: memory, clock, compute energy and radio."""

    name: str
    core: str
    ram_bytes: int
    flash_bytes: int
    clock_hz: float
    active_power_w: float
    macs_per_cycle: float
    radio_name: str

    @property
    def energy_per_mac_j(self) -> float:
        """Core energy per multiply-accumulate at the sustained MAC rate."""
        return self.active_power_w / (self.clock_hz * self.macs_per_cycle)

    @property
    def radio(self) -> Radio:
        return RADIOS[self.radio_name]

    def compute_time_s(self, macs: int) -> float:
        return macs / (self.clock_hz * self.macs_per_cycle)

    def compute_energy_j(self, macs: int) -> float:
        return macs * self.energy_per_mac_j


PROFILES: dict[str, HardwareProfile] = {
    # Nordic nRF52840: Cortex-M4F at 64 MHz, 256 KB RAM, 1 MB flash (nRF52840 Product
    # Specification v1.7, §1 "Key features"). CPU running from flash with DC/DC at 3 V draws
    # 3.3 mA (PS v1.7, §5.4.1, I_CPU0 ... "CoreMark, 64 MHz, flash, DCDC"), so ~9.9 mW.
    # 0.5 MAC/cycle sustained for float32 dense layers on a Cortex-M4F (single-issue FPU, one
    # VFMA per cycle at best, loads in between; Arm Cortex-M4 TRM r0p1, §7.2 FPU timing).
    "nrf52840-ble": HardwareProfile(
        name="nrf52840-ble",
        core="cortex-m4f",
        ram_bytes=256 * 1024,
        flash_bytes=1024 * 1024,
        clock_hz=64e6,
        active_power_w=3.0 * 3.3e-3,
        macs_per_cycle=0.5,
        radio_name="ble",
    ),
    # ST STM32WL55JC: Cortex-M4 at 48 MHz with an on-chip sub-GHz LoRa radio, 64 KB SRAM,
    # 256 KB flash (STM32WL55xx datasheet DS13293 rev. 3, §1 "Description"). Run mode from
    # flash, SMPS on: 72 µA/MHz (DS13293 §5.3.5, Table 40 typ.) at 3.3 V, ~11.4 mW at 48 MHz.
    # No FPU: float MACs in software are far slower; 0.1 MAC/cycle is a conservative estimate
    # for soft-float dense layers (Arm Cortex-M4 TRM r0p1, §3.3 instruction timing).
    "stm32wl55-lora": HardwareProfile(
        name="stm32wl55-lora",
        core="cortex-m4",
        ram_bytes=64 * 1024,
        flash_bytes=256 * 1024,
        clock_hz=48e6,
        active_power_w=3.3 * 72e-6 * 48,
        macs_per_cycle=0.1,
        radio_name="lora",
    ),
    # Nordic nRF52805: Cortex-M4 at 64 MHz (no FPU), 24 KB RAM, 192 KB flash (nRF52805
    # Product Specification v1.3, §1 "Key features"); 3.1 mA CPU from flash with DC/DC at 3 V
    # (PS v1.3, §5.2.1.1, CoreMark 64 MHz). The smallest BLE part of the fleet: larger models
    # do not fit, and the device refuses them.
    "nrf52805-ble": HardwareProfile(
        name="nrf52805-ble",
        core="cortex-m4",
        ram_bytes=24 * 1024,
        flash_bytes=192 * 1024,
        clock_hz=64e6,
        active_power_w=3.0 * 3.1e-3,
        macs_per_cycle=0.1,
        radio_name="ble",
    ),
}


def get_profile(name: str) -> HardwareProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown hardware profile {name!r}; known: {', '.join(sorted(PROFILES))}"
        ) from None
