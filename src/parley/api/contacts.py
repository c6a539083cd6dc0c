"""Bot API commands about contacts: invitations and connecting, the contact address and
its requests, contact info and the contact list."""

from __future__ import annotations

import contextlib

from parley.api import commands as c
from parley.api import lookup as look
from parley.api import responses as r
from parley.api.lookup import INVITE_PREFIX, Ctx, JsonObject, Refused


async def connect(ctx: Ctx, cmd: c.Connect) -> JsonObject:
    connection_id = await ctx.chat.connect(cmd.link)
    invitation = cmd.link.strip().startswith(INVITE_PREFIX)
    return r.response(
        "sentConfirmation" if invitation else "sentInvitation",
        ctx.me,
        connection=r.pending_connection(connection_id, via_address=not invitation),
    )


async def connect_plan(ctx: Ctx, cmd: c.ConnectPlan) -> JsonObject:
    look.check_user(ctx.me, cmd.user_id)
    return r.response(
        "connectionPlan",
        ctx.me,
        connLink=r.conn_link(cmd.link),
        connectionPlan=await _plan(ctx, cmd.link),
    )


async def _plan(ctx: Ctx, link: str) -> JsonObject:
    """What `link` is, as the current API's ConnectionPlan (parley knows whether a link
    is a one-time invitation, a contact address, or the user's own address)."""
    text = link.strip()
    if text.startswith(INVITE_PREFIX):
        return {"type": "invitationLink", "invitationLinkPlan": {"type": "ok"}}
    if not text.startswith("parley:/"):
        raise Refused(
            r.command_error(
                "not a parley link (parley:/invite#... or parley:/contact#...): parley "
                "connects only through parley links"
            )
        )
    own = None
    with contextlib.suppress(NotImplementedError):
        own = await ctx.chat.show_address()
    plan = "ownLink" if own is not None and own.link == text else "ok"
    return {"type": "contactAddress", "contactAddressPlan": {"type": plan}}


async def show_address(ctx: Ctx, cmd: c.ShowMyAddress) -> JsonObject:
    look.check_user(ctx.me, cmd.user_id)
    address = await look.address(ctx.chat)
    return r.response("userContactLink", ctx.me, contactLink=r.address_json(address))


async def create_address(ctx: Ctx, cmd: c.CreateMyAddress) -> JsonObject:
    look.check_user(ctx.me, cmd.user_id)
    link = await ctx.chat.create_address(ctx.invitation_timeout)
    return r.response(
        "userContactLinkCreated", ctx.me, connReqContact=link, connLinkContact=r.conn_link(link)
    )


async def delete_address(ctx: Ctx, cmd: c.DeleteMyAddress) -> JsonObject:
    look.check_user(ctx.me, cmd.user_id)
    await look.address(ctx.chat)
    await ctx.chat.delete_address()
    return r.response("userContactLinkDeleted", ctx.me)


async def set_auto_accept(ctx: Ctx, cmd: c.SetAutoAccept) -> JsonObject:
    look.check_user(ctx.me, cmd.user_id)
    await look.address(ctx.chat)
    address = await ctx.chat.set_auto_accept(cmd.on, cmd.welcome)
    out = r.response(
        "userContactLinkUpdated",
        ctx.me,
        contactLink=r.address_json(address),
        connReqContact=address.link,
        autoAccept=address.auto_accept,
    )
    if address.welcome:
        out["autoReply"] = r.text_content(address.welcome)
    return out


async def accept_request(ctx: Ctx, cmd: c.AcceptContact) -> JsonObject:
    await look.request(ctx.chat, cmd.request_id)
    contact = await ctx.chat.accept_contact_request(cmd.request_id)
    return r.response("acceptingContactRequest", ctx.me, contact=r.contact_json(contact))


async def reject_request(ctx: Ctx, cmd: c.RejectContact) -> JsonObject:
    request = await look.request(ctx.chat, cmd.request_id)
    await ctx.chat.reject_contact_request(cmd.request_id)
    return r.response(
        "contactRequestRejected", ctx.me, contactRequest=r.contact_request_json(request)
    )


async def contact_info(ctx: Ctx, cmd: c.ContactInfo) -> JsonObject:
    contact = await look.contact(ctx.chat, cmd.contact_id)
    # parley has no per-connection statistics to report
    return r.response("contactInfo", ctx.me, contact=r.contact_json(contact), connectionStats={})


async def list_contacts(ctx: Ctx, cmd: c.ListContacts) -> JsonObject:
    look.check_user(ctx.me, cmd.user_id)
    contacts = [r.contact_json(x) for x in await ctx.chat.contacts()]
    return r.response("contactsList", ctx.me, contacts=contacts)
