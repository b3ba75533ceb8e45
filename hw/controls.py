"""Button and indicators on gpiozero, with gpiozero's own ``MockFactory`` as the simulator.

Devices are given their pin factory explicitly (never the process-wide default), so a
simulated and a real set can coexist in one process and tests never leak pin state.

The button reports raw edges with monotonic timestamps; gesture recognition (press, double
press, hold) is recorder policy and lives in :mod:`agent.recording.gestures`. Activation inputs (a
holster switch, a light-bar relay) report raw level changes the same way; debouncing and what
an activation means are policy too (:mod:`agent.triggers`). Extra outputs (the IR illuminator
and IR-cut filter of :mod:`hw.ir`) are made on the same factory so one ``close`` frees them.
Indicators take simple modes (``off``/``on``/``blink``/``fast``) and pulse patterns.

Locking: gpiozero calls the edge callbacks from its own thread; they only forward to the
callables given in :meth:`Controls.on_edges`. Indicator methods are called by the controller.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gpiozero import LED, DigitalInputDevice, DigitalOutputDevice

__all__ = ["LEDS", "PULLS", "Controls"]

PULLS = ("up", "down", "none")
_PULL_UP: dict[str, bool | None] = {"up": True, "down": False, "none": None}

LEDS = ("recording", "standby", "fault")

_BLINK = {"blink": (0.5, 0.5), "fast": (0.1, 0.1)}


class Controls:
    """Record button, three LEDs, buzzer and vibration motor on one pin factory."""

    def __init__(
        self,
        *,
        pin_factory: Any,
        button: int,
        leds: dict[str, int],
        buzzer: int = 0,
        vibration: int = 0,
        bounce_s: float | None = None,
    ) -> None:
        self.pin_factory = pin_factory
        self.button_pin = button
        # A plain input, not gpiozero's Button: Button starts a hold-detection thread that
        # wakes ten times a second for the life of the process, and holds are recognised by
        # agent.recording.gestures from the raw edges anyway. Wired to ground, pulled up: active low.
        self._button = (
            DigitalInputDevice(button, pull_up=True, bounce_time=bounce_s,
                               pin_factory=pin_factory)
            if button
            else None
        )
        self._leds = {name: LED(pin, pin_factory=pin_factory) for name, pin in leds.items() if pin}
        self._buzzer = DigitalOutputDevice(buzzer, pin_factory=pin_factory) if buzzer else None
        self._vibration = (
            DigitalOutputDevice(vibration, pin_factory=pin_factory) if vibration else None
        )
        self._inputs: dict[int, tuple[DigitalInputDevice, bool]] = {}
        self._outputs: dict[int, DigitalOutputDevice] = {}
        self.led_modes: dict[str, str] = dict.fromkeys(self._leds, "off")
        # (device, monotonic time, count): recent history for tests and benches, bounded so a
        # unit that runs for weeks does not grow it without end
        self.pulses: deque[tuple[str, float, int]] = deque(maxlen=256)

    def on_edges(
        self, pressed: Callable[[float], None], released: Callable[[float], None]
    ) -> None:
        """Forward button edges (with ``time.monotonic()``) to the recorder."""
        if self._button is None:
            return
        self._button.when_activated = lambda: pressed(time.monotonic())
        self._button.when_deactivated = lambda: released(time.monotonic())

    def set_led(self, name: str, mode: str) -> None:
        """Set an LED to off, on, blink or fast (blinking runs in gpiozero's thread)."""
        led = self._leds.get(name)
        self.led_modes[name] = mode
        if led is None:
            return
        if mode == "on":
            led.on()
        elif mode in _BLINK:
            on_t, off_t = _BLINK[mode]
            led.blink(on_time=on_t, off_time=off_t, background=True)
        else:
            led.off()

    def pulse(self, device: str, *, count: int = 1, on_s: float = 0.12, off_s: float = 0.12) -> None:
        """Beep or vibrate ``count`` times without blocking the caller."""
        out = self._buzzer if device == "buzzer" else self._vibration
        self.pulses.append((device, time.monotonic(), count))
        if out is not None:
            out.blink(on_time=on_s, off_time=off_s, n=count, background=True)

    def watch_input(self, pin: int, *, pull: str, active_high: bool,
                    on_change: Callable[[float, bool], None]) -> bool:
        """Watch an activation input; returns whether it is active now.

        ``on_change(t, active)`` runs on gpiozero's thread at every raw level change, with
        ``time.monotonic()``; no debouncing here (a bouncing contact reports every bounce).
        ``active_high`` is the pin level that means active, whatever the pull resistor.
        """
        if pull not in _PULL_UP:
            raise ValueError(f"pull must be one of {PULLS}, not {pull!r}")
        pull_up = _PULL_UP[pull]
        dev = DigitalInputDevice(pin, pull_up=pull_up, active_state=True if pull_up is None
                                 else None, bounce_time=None, pin_factory=self.pin_factory)
        self._inputs[pin] = (dev, active_high)

        def changed() -> None:
            on_change(time.monotonic(), self.input_active(pin))

        dev.when_activated = changed
        dev.when_deactivated = changed
        return self.input_active(pin)

    def input_active(self, pin: int) -> bool:
        """Whether a watched input is at its active level now."""
        dev, active_high = self._inputs[pin]
        return bool(dev.pin.state) == active_high

    def output(self, pin: int) -> DigitalOutputDevice:
        """A plain on/off output on this factory (released by :meth:`close`)."""
        if pin not in self._outputs:
            self._outputs[pin] = DigitalOutputDevice(pin, pin_factory=self.pin_factory)
        return self._outputs[pin]

    @property
    def input_pins(self) -> list[int]:
        """Pins read as inputs: the button and every watched activation input."""
        return sorted({*([self.button_pin] if self._button else []), *self._inputs})

    @property
    def button_is_pressed(self) -> bool:
        """Current button level."""
        return bool(self._button is not None and self._button.is_active)

    # --- simulator stimuli (MockFactory pins only) -----------------------------------------
    def sim_press(self) -> None:
        """Drive the simulated button pin low (pressed; the button pulls up)."""
        self.pin_factory.pin(self.button_pin).drive_low()

    def sim_release(self) -> None:
        """Release the simulated button."""
        self.pin_factory.pin(self.button_pin).drive_high()

    def sim_drive(self, pin: int, high: bool) -> None:
        """Drive a simulated input pin high or low (``bodycam ctl sim pin PIN high|low``)."""
        if pin not in self.input_pins:
            known = ", ".join(map(str, self.input_pins)) or "none"
            raise ValueError(f"pin {pin} is not an input of this unit (inputs: {known})")
        mock = self.pin_factory.pin(pin)
        mock.drive_high() if high else mock.drive_low()

    def close(self) -> None:
        """Release every pin."""
        inputs = [dev for dev, _ in self._inputs.values()]
        for dev in [self._button, self._buzzer, self._vibration, *self._leds.values(), *inputs,
                    *self._outputs.values()]:
            if dev is not None:
                dev.close()
