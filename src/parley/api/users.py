"""Bot API commands about the chat and its user: the active user, start/stop, the profile,
the user-wide receipt setting."""

from __future__ import annotations

from parley.api import commands as c
from parley.api import lookup as look
from parley.api import responses as r
from parley.api.lookup import Ctx, JsonObject


async def show_active_user(ctx: Ctx, cmd: c.ShowActiveUser) -> JsonObject:
    return r.response("activeUser", await look.active_user(ctx.chat))


async def create_active_user(ctx: Ctx, cmd: c.CreateActiveUser) -> JsonObject:
    existing = await ctx.chat.active_user()
    if existing is not None:  # parley's chat serves the user it has
        return r.command_error(
            f"this chat has a user already ({existing.display_name}): parley "
            "serves one user per database"
        )
    return r.response("activeUser", await ctx.chat.create_user(cmd.display_name, cmd.full_name))


async def start_chat(ctx: Ctx, cmd: c.StartChat) -> JsonObject:
    if ctx.chat.started:
        return r.response("chatRunning")
    await ctx.chat.start()
    return r.response("chatStarted")


async def stop_chat(ctx: Ctx, cmd: c.StopChat) -> JsonObject:
    if ctx.stoppable:
        return r.response("chatStopped")
    return r.command_error(
        "/_stop is not supported by parley: the chat cannot be stopped over the "
        "API; stop the parley process instead"
    )


async def set_profile_address(ctx: Ctx, cmd: c.SetProfileAddress) -> JsonObject:
    look.check_user(ctx.me, cmd.user_id)
    if cmd.on:
        return r.command_error(
            "parley profiles do not carry a contact address: share the address "
            "link itself (/show_address)"
        )
    profile = r.user_profile_json(ctx.me)
    return r.response(
        "userProfileUpdated",
        ctx.me,
        fromProfile=profile,
        toProfile=profile,
        updateSummary=_no_updates(),
    )


async def update_profile(ctx: Ctx, cmd: c.UpdateProfile) -> JsonObject:
    user = ctx.me
    look.check_user(user, cmd.user_id)
    if (cmd.display_name, cmd.full_name) == (user.display_name, user.full_name):
        return r.response("userProfileNoChange", user)
    updated = await ctx.chat.update_profile(cmd.display_name, cmd.full_name)
    return r.response(
        "userProfileUpdated",
        updated,
        fromProfile=r.user_profile_json(user),
        toProfile=r.user_profile_json(updated),
        updateSummary=_no_updates(),
    )


async def set_user_receipts(ctx: Ctx, cmd: c.SetUserReceipts) -> JsonObject:
    await ctx.chat.set_receipts(cmd.on, everyone=cmd.kind)
    return r.response("cmdOk", ctx.me)


def _no_updates() -> JsonObject:
    """The UserProfileUpdateSummary parley gives (it announces the profile in the
    background and does not count the contacts it reached)."""
    return {"updateSuccesses": 0, "updateFailures": 0, "changedContacts": []}
