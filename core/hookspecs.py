"""The plugin contract: every hook a callgate plugin may implement.

This module is the reference for plugin authors.  Each hook says when it runs,
what it receives, what every return value means (``None`` included) and how
the answers of several plugins combine.

General rules, true of every hook:

* Implement a hook as a method of your plugin class, decorated with
  ``@callgate.hookimpl``.  You may accept any subset of the arguments named in
  the spec (pluggy's opt-in arguments), so hooks can gain arguments later
  without breaking you.  ``@hookimpl(specname="...")`` maps a method with
  another name to a hook.  ``wrapper``, ``hookwrapper``, ``tryfirst`` and
  ``trylast`` are refused when the plugin is loaded: the order is
  ``[plugins] enabled`` and there are no wrappers (see below).
* Implementations may be ``async def``; the core awaits them.  They must not
  block the event loop: a synchronous implementation must return in
  microseconds (no network, no disk).  Use an async client, or
  ``asyncio.to_thread`` for a blocking library.
* Plugins run one after another, in the order of ``[plugins] enabled`` in
  config.toml; the built-in ``router`` and ``caller_id`` plugins come last.
  A hook marked ``@hookspec(firstresult=True)`` (``route_call``, ``set_cli``,
  ``on_answer``, ``on_prompt_input``) stops at the first answer other than
  ``None``: later plugins are not asked.  Every other hook asks every plugin
  (``authorize_call`` until the first ``Deny``).  The dispatcher reads
  ``firstresult`` from these specs; there is no other table.
* Each call of every hook (``on_disconnect`` and ``on_notify`` included) runs
  under the plugin's one ``timeout_ms`` and inside one deadline for the whole
  callback (``[server] deadline_ms``; ``record_deadline_ms`` for DICE and
  Notify).  A plugin that raises or runs out of time is logged with its name
  and handled by its ``on_error`` policy: ``"deny"`` treats it as a ``Deny``
  (ICE) or a ``hangup`` (ACE/PIE), ``"skip"`` treats it as ``None``.  It never
  turns an ICE/ACE/PIE answer into an error (DICE and Notify: see
  ``on_disconnect``).
  A hook must let ``asyncio.CancelledError`` propagate (catch ``Exception``,
  never everything).
* ``call`` is the typed event (``callgate.events.Ice``, ``Ace``, ``Pie``,
  ``Dice`` or ``Notify``); ``call.raw`` holds the body as Sinch sent it.
* ``dry_run`` (every call hook; opt in by naming it): ``False`` when callgate
  serves Sinch, ``True`` under ``callgate simulate``.  When it is true, answer
  exactly as you would for real but change nothing that persists: no database
  write (compute it in ``transaction(rollback=True)``), no file written, nothing
  sent, no background work started.  An optional ``startup(dry_run)`` gets the
  same flag.  ``callgate simulate`` warns about an enabled plugin whose call hooks
  or ``startup`` do not accept ``dry_run``.  Declare it ``dry_run: bool = False``:
  callgate then passes it only in a dry run, so the server path costs nothing
  more (pluggy itself never passes an argument with a default; callgate does,
  for this one).  See docs/plugins.md, "Dry runs: what a plugin must do".
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .events import Ace, Dice, Ice, Notify, Pie
    from .results import Allow, CallerId, Decision, Deny, Route
    from .svaml import Svaml

PROJECT = "callgate"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- ICE: a call comes in ------------------------------------------------------------------


@hookspec
def authorize_call(call: Ice, dry_run: bool) -> Allow | Deny | None:
    """May this call go ahead?  Runs first for every ICE.

    :param call: the incoming call.
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns:
        * ``Deny(reason, prompt=None)``: veto.  The first ``Deny`` in plugin order
          ends the evaluation (later plugins are not asked) and wins, whatever
          any other plugin said; the caller hears ``prompt`` (if any), then the
          call is hung up.
        * ``Allow(max_duration=None, instructions=())``: no objection.  An
          ``Allow`` may limit the call (the smallest ``max_duration`` of all
          plugins wins, and becomes the SVAML ``maxDuration``) and contribute
          instructions (kept in plugin order, run before the action).
        * ``None``: no opinion (the call is outside this plugin's scope).  When
          no plugin has an opinion, ``[server] default_decision`` applies.

    Must not have side effects that outlive a denial by another plugin unless it
    also implements ``call_decided`` to release them (e.g. a credit reservation).

    Not ``firstresult``: an ``Allow`` or ``None`` does not end the evaluation,
    every plugin is asked in order until one denies.  That one rule is the
    pipeline's (``stop`` at the first ``Deny`` in ``core/pipeline.py``).
    """


@hookspec(firstresult=True)
def route_call(call: Ice, dry_run: bool) -> Route | None:
    """Where does an authorized call go?  Runs only when the call was allowed.

    :param call: the incoming call.
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns:
        * ``Route(action, instructions=(), name=None)``: connect the call with this
          ICE action (``ConnectPstn``, ``ConnectSip``, ``ConnectMxp``,
          ``ConnectConf``, ``RunMenu``, ``Park``, ``ConnectStream`` or ``Hangup``).
          The first ``Route`` in plugin order wins; later plugins are not asked.
        * ``None``: this plugin does not route this call; the next one is asked.
          The built-in ``router`` (the routing table in config.toml) is asked
          last.  When nobody routes the call it is hung up (after
          ``[server] no_route_prompt``, if set).
    """


@hookspec(firstresult=True)
def set_cli(call: Ice, route: Route, dry_run: bool) -> CallerId | None:
    """Which caller id should the callee see?  Runs after routing, only when the route's
    action is ``connectPstn`` or ``connectSip``.

    :param call: the incoming call.
    :param route: the route chosen by ``route_call``.
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns:
        * ``CallerId("+46850001234")`` or ``CallerId("private")``: use this caller
          id.  The first non-``None`` answer in plugin order wins; the built-in
          ``caller_id`` rules are asked last.
        * ``None``: no opinion.  When nobody answers, the route's own ``cli``
          stays, and without one Sinch shows the caller's number.
    """


@hookspec
def call_decided(call: Ice, decision: Decision, dry_run: bool) -> None:
    """The ICE answer is fixed; commit or release what ``authorize_call`` held.

    Runs for every plugin, after the answer is decided and before it is sent,
    whatever the decision.  Typical use: a plugin that reserved credit in
    ``authorize_call`` releases it when ``decision.allowed`` is false (another
    plugin denied the call).

    :param call: the incoming call.
    :param decision: the final decision: ``allowed``, ``decided_by``,
        ``reason``, ``route``, ``cli``, ``max_duration``, the ``svaml`` sent to
        Sinch and every plugin's ``outcomes``.
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns: ``None``; any return value is ignored.  An exception is logged and
        does not change the answer.
    """


# --- ACE / PIE: the callee answered, a menu collected input --------------------------------


@hookspec(firstresult=True)
def on_answer(call: Ace, dry_run: bool) -> Svaml | None:
    """The callee answered an outgoing leg (ACE).  What now?

    :param call: the answered-call event (``call.amd`` has the answering-machine
        result when AMD was enabled on the connectPstn).
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns:
        * ``Svaml(action, instructions)``: the ACE answer.  It must be valid in
          ACE (actions ``continue``, ``hangup``, ``connectConf``, ``runMenu``);
          an invalid one counts as this plugin failing.  The first non-``None``
          answer in plugin order wins.
        * ``None``: no opinion.  When nobody answers, the answer is ``continue``
          (the call is connected).
    """


@hookspec(firstresult=True)
def on_prompt_input(call: Pie, dry_run: bool) -> Svaml | None:
    """A ``runMenu`` (or conference DTMF detection) produced a result (PIE).  What now?

    :param call: the prompt-input event; ``call.menu_result`` has ``menu_id``,
        ``type`` (``sequence``, ``return``, ``timeout``, ``hangup``,
        ``invalidinput``, ``error``), ``value`` and ``input_method``.
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns:
        * ``Svaml(action, instructions)``: the PIE answer, valid in PIE.  The first
          non-``None`` answer in plugin order wins.
        * ``None``: no opinion.  The built-in ``router`` answers from its
          ``menu_answers`` table last; when nothing matches, its ``pie_default``
          (``continue`` unless configured) is sent.
    """


# --- DICE / Notify: the call ended, something happened -------------------------------------


@hookspec
def on_disconnect(call: Dice, dry_run: bool) -> None:
    """The call ended (DICE): record it.

    Runs for every plugin.  DICE is answered ``200 {}`` only after every plugin
    has returned, so a 200 tells Sinch the call is durably recorded.  If any
    plugin raises or runs out of time, DICE is answered ``503`` so that Sinch's
    fallback URL receives it: write durably first, and do slow work (a CRM
    request) in the background afterwards.  The same DICE may arrive twice
    (primary and fallback URL): recording must be idempotent per ``call.callid``.

    :param call: the disconnected-call event (``reason``, ``result``,
        ``duration``, ``debit``, ...).
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns: ``None``; any return value is ignored.
    """


@hookspec
def on_notify(call: Notify, dry_run: bool) -> None:
    """Sinch sent a notification (recording available, async AMD result, calling error).

    Runs for every plugin, and is awaited before the ``200 {}`` answer, like
    ``on_disconnect``; a plugin that raises or runs out of time makes the answer
    ``503``.

    :param call: the notification (``type``, ``destination``, ``amd``, ``error_code``).
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns: ``None``; any return value is ignored.
    """


# --- operation -------------------------------------------------------------------------------


@hookspec
def check_ready() -> str | None:
    """Is this plugin ready to answer calls?  Asked by ``GET /readyz``.

    :returns:
        * ``None``: ready.
        * a string: not ready, and why (e.g. ``"database unreachable: ..."``);
          ``/readyz`` answers 503 and lists it.  Raising counts as not ready.
    """


@hookspec
def collect_metrics() -> dict[str, float] | None:
    """Gauges this plugin wants on ``/metrics`` (outbox depth, open reservations, ...).

    Asked at every scrape; each value becomes
    ``callgate_plugin_gauge{plugin="<name>", name="<key>"}``.

    :returns:
        * a ``dict`` of gauge name to number: their current values.
        * ``None``: nothing to report.  Raising is logged on the scrape and skipped.
    """


@hookspec
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add subcommands to the ``callgate`` command (e.g. ``callgate credit topup``).

    Called on enabled plugins only, when the command line is built.  Add parsers
    with ``subparsers.add_parser(name, help=...)`` and set the function to run
    with ``parser.set_defaults(handler=fn)``; ``fn(args)`` receives the parsed
    ``argparse.Namespace``, may be ``async def``, and returns the exit status
    (``None`` means 0).

    :returns: ``None``.
    """
