// The npm client drives the address and group link flows of parley chats through their
// bot API. Usage: node addresses.mjs URL_BOT URL_BOB URL_CAROL URL_DAVE [group-links]
// (four chats with no user yet; the group link part only with "group-links"). Exits 0 if
// every check passes. Run by tests/api/test_compat.py.
import simplex from "simplex-chat";
import client from "simplex-chat/dist/client.js";
import command from "simplex-chat/dist/command.js";
import response from "simplex-chat/dist/response.js";

const { ChatClient } = simplex;
const { ChatCommandError } = client;
const { ChatType } = command;
const { ciContentText } = response;
const TIMEOUT = 20000;

function check(cond, what, value) {
  if (!cond) {
    const shown = value === undefined ? "" : `: ${JSON.stringify(value)}`;
    throw new Error(`check failed: ${what}${shown}`);
  }
}

// every event is kept (the client stops reading replies while its queue is full)
function listen(chat, name) {
  const events = [];
  const waiters = [];
  (async () => {
    for await (const resp of chat.msgQ) {
      events.push(resp);
      for (const w of [...waiters]) w();
    }
  })().catch((e) => console.error(`${name}: event loop failed`, e));
  return async function next(type, pred = () => true, ms = TIMEOUT) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = events.findIndex((e) => e.type === type && pred(e));
      if (i >= 0) return events.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`${name}: no ${type} within ${ms} ms (unread: ${events.map((e) => e.type)})`);
      }
      await new Promise((resolve) => {
        const t = setTimeout(done, left);
        function done() {
          clearTimeout(t);
          const k = waiters.indexOf(done);
          if (k >= 0) waiters.splice(k, 1);
          resolve();
        }
        waiters.push(done);
      });
    }
  };
}

async function user(url, name) {
  const chat = await ChatClient.create(url);
  const next = listen(chat, name);
  await chat.apiCreateActiveUser({ displayName: name, fullName: "" });
  await chat.apiStartChat();
  return [chat, next];
}

async function cmd(chat, c, type) {
  const r = await chat.sendChatCommand(c);
  if (r.type !== type) throw new ChatCommandError(`${c.type}: expected ${type}`, r);
  return r;
}

async function main() {
  const [urlBot, urlBob, urlCarol, urlDave, withLinks] = process.argv.slice(2);
  const [bot, botEvent] = await user(urlBot, "bot");
  const [bob, bobEvent] = await user(urlBob, "bob");
  const [carol, carolEvent] = await user(urlCarol, "carol");
  const [dave, daveEvent] = await user(urlDave, "dave");

  // the address, with auto-accept and a welcome message
  check((await bot.apiGetUserAddress()) === undefined, "no address yet");
  const address = await bot.apiCreateUserAddress();
  check(typeof address === "string" && address.startsWith("parley:/contact#"), "address", address);
  check((await bot.apiGetUserAddress()) === address, "the same address shown");
  await bot.enableAddressAutoAccept(false, { type: "text", text: "Welcome! Send me a number." });
  const shown = await cmd(bot, { type: "showMyAddress" }, "userContactLink");
  check(shown.contactLink.autoAccept?.autoReply?.text === "Welcome! Send me a number.", "auto", shown);

  check((await bob.apiConnect(address)) === "contact", "joining an address: sentInvitation");
  const bobAtBot = await botEvent("contactConnected", (e) => e.contact.localDisplayName === "bob");
  await bobEvent("contactConnected", (e) => e.contact.localDisplayName === "bot");
  const welcome = await bobEvent("newChatItems");
  check(ciContentText(welcome.chatItems[0].chatItem.content) === "Welcome! Send me a number.",
    "welcome", welcome.chatItems[0]);
  await bob.apiSendTextMessage(ChatType.Direct, welcome.chatItems[0].chatInfo.contact.contactId, "7");
  const seven = await botEvent("newChatItems");
  check(seven.chatItems[0].chatInfo.contact.contactId === bobAtBot.contact.contactId, "from bob");

  // auto-accept off: requests wait for /_accept or /_reject
  await bot.disableAddressAutoAccept();
  check((await carol.apiConnect(address)) === "contact", "carol asks");
  const req = await botEvent("receivedContactRequest");
  check(req.contactRequest.localDisplayName === "carol", "carol's request", req.contactRequest);
  const accepted = await bot.apiAcceptContactRequest(req.contactRequest.contactRequestId);
  check(accepted.localDisplayName === "carol", "accepting carol", accepted);
  await botEvent("contactConnected", (e) => e.contact.localDisplayName === "carol");
  await carolEvent("contactConnected", (e) => e.contact.localDisplayName === "bot");
  check((await dave.apiConnect(address)) === "contact", "dave asks");
  const req2 = await botEvent("receivedContactRequest");
  await bot.apiRejectContactRequest(req2.contactRequest.contactRequestId);
  const again = await bot.sendChatCommand({ type: "apiRejectContact", contactReqId: 4242 });
  check(again.type === "chatCmdError" && again.chatError.storeError?.type === "contactRequestNotFound",
    "no such request", again);

  // a group link: dave joins the group through it
  if (withLinks === "group-links") await groupLinks(bot, dave, daveEvent);

  // deleting the address
  await bot.apiDeleteUserAddress();
  check((await bot.apiGetUserAddress()) === undefined, "address deleted");

  for (const c of [bot, bob, carol, dave]) await c.disconnect();
}

async function groupLinks(bot, dave, daveEvent) {
  const group = await bot.apiNewGroup({ displayName: "squares", fullName: "" });
  const created = await cmd(bot,
    { type: "apiCreateGroupLink", groupId: group.groupId, memberRole: "member" }, "groupLinkCreated");
  check(created.connReqContact.startsWith("parley:/"), "group link", created);
  check(created.memberRole === "member", "role", created);
  const got = await cmd(bot, { type: "apiGetGroupLink", groupId: group.groupId }, "groupLink");
  check(got.connReqContact === created.connReqContact, "the same link", got);
  await dave.apiConnect(created.connReqContact);
  const joined = await daveEvent("userJoinedGroup", () => true, 30000);
  check(joined.groupInfo.groupProfile.displayName === "squares", "dave joined", joined);
  const set = await cmd(bot,
    { type: "apiGroupLinkMemberRole", groupId: group.groupId, memberRole: "observer" }, "groupLink");
  check(set.memberRole === "observer", "role changed", set);
  await cmd(bot, { type: "apiDeleteGroupLink", groupId: group.groupId }, "groupLinkDeleted");
  const none = await bot.sendChatCommand({ type: "apiGetGroupLink", groupId: group.groupId });
  check(none.type === "chatCmdError" && none.chatError.storeError?.type === "groupLinkNotFound",
    "link deleted", none);
}

const timer = setTimeout(() => {
  console.error("addresses.mjs: timed out");
  process.exit(2);
}, 90000);
main().then(
  () => {
    clearTimeout(timer);
    console.log("addresses.mjs: all checks passed");
    process.exit(0);
  },
  (e) => {
    console.error(e instanceof ChatCommandError ? `${e.message}: ${JSON.stringify(e.response)}` : e);
    process.exit(1);
  },
);
