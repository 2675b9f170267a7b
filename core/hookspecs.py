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
* Implementations may be ``async def`` (except ``callback_answered`` and
  ``register_ops_routes``, which must be plain ``def``); the core awaits them.  They must not
  block the event loop: a synchronous implementation must return in
  microseconds (no network, no disk).  Use an async client, or
  ``asyncio.to_thread`` for a blocking library.
* The decision hooks run plugins one after another, in the order of ``[plugins]
  enabled`` in config.toml; the built-in ``router`` and ``caller_id`` plugins come last.
  The recording hooks (``on_disconnect``, ``on_notify``: nothing to combine) run every
  plugin at the same time (since 0.4.0): each is called in that order without waiting
  for the one before (a plain ``def`` runs to its end when called; the ``async def`` ones
  then run together, started in that order), so their durable writes wait together.
  A recording hook must not rely on another plugin's recording hook having run: to use
  its note, await it with ``callgate.wait_for_note``
  (see :mod:`callgate.notes`).
  A hook marked ``@hookspec(firstresult=True)`` (``route_call``, ``set_cli``,
  ``on_answer``, ``on_prompt_input``) stops at the first answer other than
  ``None``: later plugins are not asked.  Every other hook asks every plugin
  (``authorize_call`` until the first ``Deny``).  The dispatcher reads
  ``firstresult`` from these specs; there is no other table.
* A plugin serves both Sinch Voice API generations: each call hook says which
  events of each generation run it (v1 callbacks: ICE, ACE, PIE, DICE, Notify;
  v2 webhooks: ``call.incoming``, ``call.answered``, ...).
* Each call of every call hook (``on_disconnect`` and ``on_notify`` included) runs
  under the plugin's one ``timeout_ms`` and inside one deadline for the whole
  callback (``[server] deadline_ms``; ``record_deadline_ms`` for DICE and
  Notify).  A plugin that raises or runs out of time is logged with its name
  and handled by its ``on_error`` policy: ``"deny"`` treats it as a ``Deny``
  (``authorize_call``, ``route_call``, ``set_cli``: the call is hung up) or an
  ``EndCall`` (``on_answer``, ``on_prompt_input``), ``"skip"`` treats it as
  ``None``.  A failing ``call_decided`` is logged and changes nothing, whatever
  the policy.  It never turns an answer into an error (the events that record:
  see ``on_disconnect``).
  An answer the call's generation cannot carry out (v2 SVAML for a v1 call, v1
  SVAML, an ``InAppUser`` or a ``Conference`` for a v2 call) counts as the
  plugin failing, with an error saying why.
  A hook must let ``asyncio.CancelledError`` propagate (catch ``Exception``,
  never everything).
* ``call`` is the neutral call (:mod:`callgate.calls`: ``Incoming``,
  ``Answered``, ``MenuInput``, ``Ended`` or ``Notice``), whichever generation sent
  it: ``call.generation`` is ``"v1"`` or ``"v2"``, ``call.key`` the id to keep
  records by, ``call.raw`` the body as Sinch sent it.  Answers are neutral
  decisions (:mod:`callgate.decisions`), rendered for the call's generation.
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
    from aiohttp import web

    from .calls import Answered, Ended, Incoming, MenuInput, Notice
    from .decisions import Allow, CallerId, Deny, EndCall, Proceed, Route, SvamlRoute
    from .exchange import Exchange
    from .protocols.v1.svaml import Svaml
    from .protocols.v2.wire import V2Answer
    from .results import Decision

PROJECT = "callgate"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- a call comes in: v1 ICE, v2 call.incoming ---------------------------------------------


@hookspec
def authorize_call(call: Incoming, dry_run: bool) -> Allow | Deny | None:
    """May this call go ahead?  Runs first for every incoming call: v1 ICE, v2 ``call.incoming``.

    :param call: the incoming call.
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns:
        * ``Deny(reason, prompt=None)``: veto.  The first ``Deny`` in plugin order
          ends the evaluation (later plugins are not asked) and wins, whatever
          any other plugin said; the caller hears ``prompt`` (a ``Prompt``, if
          any), then the call is hung up.
        * ``Allow(max_duration=None, prompts=())``: no objection.  An
          ``Allow`` may limit the call (the smallest ``max_duration`` of all
          plugins wins, and becomes the dialled call's maximum duration: v1
          ``maxDuration``) and contribute prompts (kept in plugin order, played
          before the call is connected).
        * ``None``: no opinion (the call is outside this plugin's scope).  When
          no plugin has an opinion, ``[server] default_decision`` applies.

    Must not have side effects that outlive a denial by another plugin unless it
    also implements ``call_decided`` to release them (e.g. a credit reservation).

    Not ``firstresult``: an ``Allow`` or ``None`` does not end the evaluation,
    every plugin is asked in order until one denies.  That one rule is the
    pipeline's (``stop`` at the first ``Deny`` in ``core/pipeline.py``).
    """


@hookspec(firstresult=True)
def route_call(call: Incoming, dry_run: bool) -> Route | SvamlRoute | Svaml | V2Answer | None:
    """Where does an authorized call go?  Runs for an incoming call (v1 ICE, v2 ``call.incoming``), only
    when it was allowed.

    :param call: the incoming call.
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns:
        * ``Route(to, name=None, max_duration=None, cli=None, dial_timeout=None, prompts=())``:
          play ``prompts``, then send the call ``to`` a ``PhoneNumber``, a ``SipEndpoint``,
          an ``InAppUser`` or a ``Conference`` (v1 only), a ``DigitMenu`` or ``EndCall``.
          The first non-``None`` answer in plugin order wins; later plugins are not asked.
        * ``SvamlRoute(svaml, name=None)``, or the SVAML alone: a route in one
          generation's own SVAML (a v1 ``callgate.protocols.v1.svaml.Svaml`` valid in ICE, a v2
          ``V2Answer``) for what no ``Route`` expresses.  For a call of the other
          generation it counts as this plugin failing.
        * ``None``: this plugin does not route this call; the next one is asked.
          The built-in ``router`` (the routing table in config.toml) is asked
          last.  When nobody routes the call it is hung up (after
          ``[server] no_route_prompt``, if set).
    """


@hookspec(firstresult=True)
def set_cli(call: Incoming, route: Route | SvamlRoute, dry_run: bool) -> CallerId | None:
    """Which caller id should the callee see?  Runs for an incoming call (v1 ICE, v2 ``call.incoming``)
    after routing, only when the route dials: its target is a ``PhoneNumber`` or a ``SipEndpoint``
    (or it is v1 SVAML whose action is ``connectPstn`` or ``connectSip``, or a v2 ``V2Answer`` with a
    ``dial`` command at its top level, whose ``from`` the caller id becomes).

    :param call: the incoming call.
    :param route: the route chosen by ``route_call`` (SVAML it returned alone comes as a
        ``SvamlRoute`` without a name).
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns:
        * ``CallerId("+46850001234")`` or ``CallerId("private")``: use this caller
          id.  The first non-``None`` answer in plugin order wins; the built-in
          ``caller_id`` rules are asked last.
        * ``None``: no opinion.  When nobody answers, the route's own ``cli``
          stays, and without one Sinch shows the caller's number.

    Raising or timing out follows the plugin's ``on_error``: ``"deny"`` denies the call (hung up, the
    plugin named as deciding; a plugin that hides the caller's number must not let the call through
    showing it), ``"skip"`` counts as no opinion.
    """


@hookspec
def call_decided(call: Incoming, decision: Decision, dry_run: bool) -> None:
    """The answer to an incoming call (v1 ICE, v2 ``call.incoming``) is fixed; commit or release what
    ``authorize_call`` held.

    Runs for every plugin, after the answer is decided and before it is sent,
    whatever the decision.  Typical use: a plugin that reserved credit in
    ``authorize_call`` releases it when ``decision.allowed`` is false (another
    plugin denied the call).

    :param call: the incoming call.
    :param decision: the final decision: ``allowed``, ``decided_by``,
        ``reason``, ``route`` (the neutral ``Route``, or None), ``routed_by``,
        ``route_name``, ``cli``, ``max_duration``, the ``generation``, the
        ``svaml`` sent to Sinch (that generation's) and every plugin's ``outcomes``.
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns: ``None``; any return value is ignored.  An exception is logged and
        does not change the answer.
    """


# --- the callee answered, a menu collected input: v1 ACE / PIE, v2 call.answered / call.menu --


@hookspec(firstresult=True)
def on_answer(call: Answered, dry_run: bool) -> Proceed | EndCall | Route | Svaml | V2Answer | None:
    """The callee answered a connected leg (v1 ACE, v2 ``call.answered``).  What now?

    :param call: the answered call (``call.amd`` has the answering-machine
        result when AMD was enabled on the v1 connectPstn).
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns:
        * ``Proceed()``: connect the call (v1 ``continue``, v2 ``bridgeCall``).
        * ``EndCall(prompts=())``: hang up, after the prompts.
        * ``Route(...)``: send the call on (v1 ACE allows a ``Conference``, a
          ``DigitMenu`` or ``EndCall``; an answer the generation rejects is
          replaced by its safe answer).
        * v1 ``Svaml`` (valid in ACE: actions ``continue``, ``hangup``,
          ``connectConf``, ``runMenu``) or a v2 ``V2Answer``: generation-specific
          SVAML; an invalid one, or one for the other generation, counts as this
          plugin failing.
        * ``None``: no opinion.  The first non-``None`` answer in plugin order wins;
          when nobody answers, the answer is ``Proceed`` (the call is connected).
    """


@hookspec(firstresult=True)
def on_prompt_input(call: MenuInput, dry_run: bool) -> Proceed | EndCall | Route | Svaml | V2Answer | None:
    """A menu produced a result (v1 PIE: a ``runMenu`` or conference DTMF detection; v2 ``call.menu``).
    What now?

    :param call: the menu input; ``call.menu_result`` has ``menu_id``,
        ``type`` (``sequence``, ``return``, ``timeout``, ``hangup``,
        ``invalidinput``, ``error``; v2 only ``sequence``), ``value`` and ``input_method``.
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns:
        * ``Proceed()``: carry on (v1 ``continue``).
        * ``EndCall(prompts=())``: hang up, after the prompts.
        * ``Route(...)``: send the call on (a number, a SIP endpoint, a conference,
          another ``DigitMenu``), after the route's prompts.
        * v1 ``Svaml`` (valid in PIE) or a v2 ``V2Answer``: generation-specific
          SVAML; an invalid one, or one for the other generation, counts as this
          plugin failing.
        * ``None``: no opinion.  The first non-``None`` answer in plugin order wins.
          The built-in ``router`` answers from its ``menu_answers`` table last;
          when nothing matches, its ``pie_default`` (``continue``: ``Proceed``,
          unless configured) is sent; with no answer at all the call is ended.
    """


# --- the call ended, something happened: v1 DICE / Notify, v2 end states / notices ------------


@hookspec
def on_disconnect(call: Ended, dry_run: bool) -> None:
    """The call ended: record it.  Runs for v1 DICE and for the v2 end states ``call.hangup``,
    ``call.busy``, ``call.rejected``, ``call.timeout`` and ``call.failed`` (each v2 leg ends on its own).

    Runs for every plugin, all at the same time (each under its own ``timeout_ms``): do not rely on
    another plugin's ``on_disconnect`` having run; await its note with ``callgate.wait_for_note(call,
    name)``, and leave yours with ``callgate.leave_note(call, name, note)`` as soon as you know it.
    The event is acknowledged (v1 ``200 {}``) only after every plugin
    has returned, so that answer tells Sinch the call is durably recorded.  If any
    plugin raises or runs out of time, it is answered so that Sinch's fallback URL
    receives it (v1 ``503``): write durably first, and do slow work (a CRM
    request) in the background afterwards.  The same event may arrive twice
    (primary and fallback URL): recording must be idempotent per ``call.key``.

    :param call: the ended call (``reason``, ``result``, ``answered``,
        ``duration``, ``debit`` (v1 only), ``rate``, ...).
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns: ``None``; any return value is ignored.
    """


@hookspec
def on_notify(call: Notice, dry_run: bool) -> None:
    """Sinch sent a notification (recording available, AMD result, calling error).  Runs for v1
    Notify and for the v2 ``call.amd.*``, ``call.recording.*`` and ``call.message.finished`` events.

    Runs for every plugin, all at the same time, and is awaited before the acknowledgement, like
    ``on_disconnect``; a plugin that raises or runs out of time makes Sinch send
    it to the fallback URL (v1 ``503``).

    :param call: the notice (``type``, ``destination``, ``amd``, ``error_code``).
    :param dry_run: ``True`` under ``callgate simulate``: answer as for real, change nothing
        that persists (see the module docstring).
    :returns: ``None``; any return value is ignored.
    """


# --- after the answer: every signed callback --------------------------------------------------


@hookspec
def callback_answered(exchange: Exchange) -> None:
    """A signed callback (v1) or webhook (v2) was answered: see it, with its answer and why.

    Runs once per request whose signature check passed, after its answer is decided and before it
    is sent, for every event of both generations: the events that run call hooks, the events callgate
    ignores (an unknown v1 event, an unknown or custom v2 event: ``exchange.call`` is None) and a
    signed body refused as invalid (400, ``exchange.event`` is ``"-"``).  Requests refused before
    the signature check passed (405, 413, 415, 408, 401, ...) are not given, so a sender without the
    secret cannot reach a plugin through it.  It also runs for a request whose answer is a 503 (a
    recording plugin failed).  Not run by ``callgate simulate`` (it serves no request).

    :param exchange: the request and its answer (:class:`callgate.exchange.Exchange`): ``received_at``,
        ``generation``, ``event``, ``call`` (the neutral call or None), ``headers`` (without ``Authorization``,
        ``Proxy-Authorization`` and ``Cookie``), ``body``, ``status``, ``answer``, ``decision`` (an incoming call's,
        else None), ``outcomes`` (every plugin's hook calls: status, verdict, ``elapsed_ms``),
        ``problem``, ``summary`` and ``ms`` (the time to answer).
    :returns: ``None``; any return value is ignored.

    Must be a plain ``def`` that returns at once (microseconds: append to a bounded queue and write
    it from a background task); an ``async def`` implementation is refused when the plugin is loaded.
    It runs on the answer path, outside the plugin's ``timeout_ms``.  An exception is logged
    (``plugin_failed``, hook ``callback_answered``) and counted
    (``callgate_plugin_failures_total{hook="callback_answered", kind="error"}``); it never changes
    the answer, and the plugins after it are still called.  When no enabled plugin implements this
    hook, no ``Exchange`` is built at all.
    """


# --- operation -------------------------------------------------------------------------------


@hookspec
def register_ops_routes(app: web.Application) -> None:
    """Add pages or API endpoints to the **ops** application (the one on ``[server] ops_port``).

    Called once, on every enabled plugin that implements it, when the ops application is built
    (``callgate serve`` with ``ops_port`` set; in each worker with ``--workers``), before any
    plugin's ``startup``.  A plugin's routes never appear on the public callback port: with
    ``ops_port = 0`` there is no ops application, and a plugin implementing this hook is refused by
    ``callgate check-config`` and ``callgate serve`` (PluginError naming it).

    :param app: the ops ``aiohttp.web.Application`` (``/healthz``, ``/readyz``, ``/metrics`` are
        there already).  Add routes and static folders under the plugin's own prefix,
        ``/<plugin name>/...`` (or exactly ``/<plugin name>``), e.g.
        ``app.router.add_get("/console/", page)``.  A route outside it stops start-up with an error
        naming the plugin.  The routes are served without authentication: a plugin that shows
        anything private checks access itself.  Do not change anything else on the app (its
        middlewares, its signals): the other plugins share it.
    :returns: ``None``; any return value is ignored.  It must be a plain ``def``; an exception
        stops start-up with an error naming the plugin.
    """



@hookspec
def check_ready() -> str | None:
    """Is this plugin ready to answer calls?  Asked by ``GET /readyz``.

    :returns:
        * ``None``: ready.
        * a string: not ready, and why, in a few words of the plugin's own (e.g. ``"database unreachable"``);
          ``/readyz`` answers 503 and lists it.  It is served to whoever asks ``/readyz`` (on the callback port
          when ``ops_port`` is 0): never an exception's text, a URL, a host or a path; log those.  Raising
          counts as not ready, and so does anything else (an empty string, a list: logged as
          ``plugin_failed``).
    """


@hookspec
def collect_metrics() -> dict[str, float] | None:
    """Gauges this plugin wants on ``/metrics`` (outbox depth, open reservations, ...).

    Asked at every scrape; each value becomes
    ``callgate_plugin_gauge{plugin="<name>", name="<key>"}``.

    :returns:
        * a ``dict`` of gauge name to number: their current values.
        * ``None``: nothing to report.  Raising is logged on the scrape and skipped, and so is anything
          else (an answer that is not a dict, an entry whose value is not a number: only that entry):
          ``plugin_failed``, counted in ``callgate_plugin_failures_total{hook="collect_metrics"}``; the other
          gauges and metrics are served.
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
