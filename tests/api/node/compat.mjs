// Drives two parley chats through their bot API with the official simplex-chat npm client.
// Usage: node compat.mjs ws://127.0.0.1:PORT_A ws://127.0.0.1:PORT_B
// Both chats start with no user and not started. Exits 0 if every check passes, 1 (with
// the failed check on stderr) otherwise. Run by tests/api/test_compat.py.
import simplex from "simplex-chat";
import client from "simplex-chat/dist/client.js";
import command from "simplex-chat/dist/command.js";
import response from "simplex-chat/dist/response.js";

const { ChatClient } = simplex;
const { ChatCommandError } = client;
const { ChatType } = command;
const { ciContentText } = response;

const [urlA, urlB] = process.argv.slice(2);
const TIMEOUT = 15000;

function check(cond, what, value) {
  if (!cond) {
    const shown = value === undefined ? "" : `: ${JSON.stringify(value)}`;
    throw new Error(`check failed: ${what}${shown}`);
  }
}

// events (responses without corrId) arrive on client.msgQ: read them all the time (the
// client stops reading replies when its queue is full) and let the test wait for them
function listen(client, name) {
  const events = [];
  const waiters = [];
  (async () => {
    for await (const resp of client.msgQ) {
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
        const seen = events.map((e) => e.type);
        throw new Error(`${name}: no ${type} event within ${ms} ms (unread: ${seen})`);
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

async function rejects(promise, what) {
  try {
    await promise;
  } catch (e) {
    check(e instanceof ChatCommandError, `${what} rejects with ChatCommandError`, String(e));
    check(e.response.type === "chatCmdError", `${what}: chatCmdError`, e.response);
    return e.response;
  }
  throw new Error(`check failed: ${what} should have been refused`);
}

async function waitFor(what, fn, ms = TIMEOUT) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main() {
  const a = await ChatClient.create(urlA);
  const b = await ChatClient.create(urlB);
  const eventA = listen(a, "alice");
  const eventB = listen(b, "bob");

  // users and start
  check((await a.apiGetActiveUser()) === undefined, "no active user yet");
  const ua = await a.apiCreateActiveUser({ displayName: "alice", fullName: "Alice Liddell" });
  check(ua.profile.displayName === "alice" && ua.profile.fullName === "Alice Liddell", "profile", ua);
  check(ua.localDisplayName === "alice" && typeof ua.userId === "number", "user", ua);
  const ub = await b.apiCreateActiveUser({ displayName: "bob", fullName: "" });
  await a.apiStartChat();
  await b.apiStartChat();
  await a.apiStartChat(); // again: chatRunning, which the client accepts too
  const again = await a.apiGetActiveUser();
  check(again.userId === ua.userId && again.localDisplayName === "alice", "active user", again);

  // contacts
  const link = await a.apiCreateLink();
  check(typeof link === "string" && link.startsWith("parley:"), "invitation link", link);
  check((await b.apiConnect(link)) === "invitation", "connected with an invitation");
  const connA = await eventA("contactConnected");
  const connB = await eventB("contactConnected");
  check(connA.contact.localDisplayName === "bob", "alice sees bob", connA.contact);
  check(connB.contact.profile.fullName === "Alice Liddell", "bob sees alice", connB.contact);
  const bobId = connA.contact.contactId;
  const aliceId = connB.contact.contactId;

  // direct messages
  const sent = await a.apiSendTextMessage(ChatType.Direct, bobId, "hello bob");
  check(sent.length === 1, "one item sent", sent);
  check(ciContentText(sent[0].chatItem.content) === "hello bob", "sent text", sent[0]);
  check(sent[0].chatItem.chatDir.type === "directSnd", "sent direction", sent[0]);
  check(sent[0].chatInfo.type === "direct" && sent[0].chatInfo.contact.contactId === bobId, "to bob");
  const got = await eventB("newChatItems");
  const item = got.chatItems[0];
  check(item.chatInfo.type === "direct" && item.chatInfo.contact.contactId === aliceId, "from alice");
  check(item.chatItem.chatDir.type === "directRcv", "received direction", item.chatItem);
  check(ciContentText(item.chatItem.content) === "hello bob", "received text", item.chatItem);
  check(item.chatItem.meta.itemText === "hello bob", "meta text", item.chatItem.meta);
  await b.apiSendTextMessage(ChatType.Direct, aliceId, "hi alice");
  const back = await eventA("newChatItems");
  check(ciContentText(back.chatItems[0].chatItem.content) === "hi alice", "reply", back);

  const chats = await b.apiGetChats(ub.userId);
  const direct = chats.find((c) => c.chatInfo.type === "direct");
  check(direct && direct.chatInfo.contact.contactId === aliceId, "chat list", chats);
  check(direct.chatItems.length === 1, "the last item with the chat", direct);
  const chat = await b.apiGetChat(ChatType.Direct, aliceId, { count: 10 });
  const texts = chat.chatItems.map((i) => ciContentText(i.content));
  check(JSON.stringify(texts) === '["hello bob","hi alice"]', "chat items, oldest first", texts);
  const older = await b.apiGetChat(ChatType.Direct, aliceId, {
    count: 10,
    before: chat.chatItems[1].meta.itemId,
  });
  check(older.chatItems.length === 1, "before= pagination", older.chatItems);

  // a group: alice creates it and invites bob
  const group = await a.apiNewGroup({ displayName: "team", fullName: "The Team" });
  check(group.groupProfile.displayName === "team", "group profile", group);
  check(group.membership.memberStatus === "memCreator", "alice created it", group.membership);
  check(group.membership.memberRole === "owner", "alice owns it", group.membership);
  const invited = await a.apiAddMember(group.groupId, bobId, "member");
  check(invited.memberStatus === "memInvited" && invited.memberRole === "member", "invited", invited);
  check(invited.localDisplayName === "bob", "invited bob", invited);
  const inv = await eventB("receivedGroupInvitation");
  check(inv.groupInfo.groupProfile.displayName === "team", "invitation", inv);
  check(inv.contact.contactId === aliceId && inv.memberRole === "member", "invited by alice", inv);
  const joined = await b.apiJoinGroup(inv.groupInfo.groupId);
  check(joined.groupId === inv.groupInfo.groupId, "joining", joined);
  const bobJoined = await eventB("userJoinedGroup");
  check(bobJoined.hostMember.localDisplayName === "alice", "host", bobJoined);
  const aliceSaw = await eventA("joinedGroupMember");
  check(aliceSaw.member.groupMemberId === invited.groupMemberId, "same member", aliceSaw);
  const members = await waitFor("bob's membership to complete", async () => {
    const ms = await a.apiListMembers(group.groupId);
    return ms.length === 1 && ms[0].memberStatus === "memComplete" ? ms : undefined;
  });
  check(members[0].memberCategory === "invitee", "member category", members[0]);
  const bobsView = await b.apiListMembers(inv.groupInfo.groupId);
  check(bobsView.length === 1 && bobsView[0].memberCategory === "host", "bob's view", bobsView);
  check(bobsView[0].memberStatus === "memConnected", "bob's host is connected", bobsView);

  // group messages
  const gsent = await a.apiSendTextMessage(ChatType.Group, group.groupId, "hello team");
  check(gsent[0].chatItem.chatDir.type === "groupSnd", "group send", gsent);
  const ggot = await eventB("newChatItems", (e) => e.chatItems[0].chatInfo.type === "group");
  const gitem = ggot.chatItems[0];
  check(gitem.chatItem.chatDir.type === "groupRcv", "group receive", gitem.chatItem);
  check(gitem.chatItem.chatDir.groupMember.localDisplayName === "alice", "author", gitem.chatItem);
  check(gitem.chatInfo.groupInfo.groupId === inv.groupInfo.groupId, "in the group", gitem);
  check(ciContentText(gitem.chatItem.content) === "hello team", "group text", gitem.chatItem);
  await b.apiSendTextMessage(ChatType.Group, inv.groupInfo.groupId, "hi from bob");
  const greply = await eventA("newChatItems", (e) => e.chatItems[0].chatInfo.type === "group");
  check(ciContentText(greply.chatItems[0].chatItem.content) === "hi from bob", "group reply");

  // info
  const [stats, custom] = await a.apiContactInfo(bobId);
  check(typeof stats === "object" && custom === undefined, "contact info", stats);
  const memberStats = await a.apiGroupMemberInfo(group.groupId, invited.groupMemberId);
  check(memberStats === undefined, "no connection stats in parley", memberStats);
  await a.apiChatRead(ChatType.Direct, bobId);

  // what parley does not do, and mistakes, are refused with chatCmdError
  const noContact = await rejects(a.apiAddMember(group.groupId, 999, "member"), "unknown contact");
  check(noContact.chatError.storeError.type === "contactNotFound", "contactNotFound", noContact);
  const owner = await rejects(a.apiAddMember(group.groupId, bobId, "owner"), "second owner");
  check(owner.chatError.type === "error", "an error from the chat", owner);
  const notMember = await rejects(a.apiSendTextMessage(ChatType.Group, 999, "x"), "no group");
  check(notMember.chatError.storeError.type === "groupNotFound", "groupNotFound", notMember);

  // a second group, where alice removes bob and then deletes the group
  const two = await a.apiNewGroup({ displayName: "two", fullName: "" });
  const invited2 = await a.apiAddMember(two.groupId, bobId, "admin");
  const inv2 = await eventB("receivedGroupInvitation", (e) => e.groupInfo.localDisplayName === "two");
  await b.apiJoinGroup(inv2.groupInfo.groupId);
  await eventA("joinedGroupMember", (e) => e.groupInfo.groupId === two.groupId);
  const removed = await a.apiRemoveMember(two.groupId, invited2.groupMemberId);
  check(removed.memberStatus === "memRemoved", "removed", removed);
  const gone = await eventB("deletedMemberUser");
  check(gone.groupInfo.groupId === inv2.groupInfo.groupId, "bob was removed", gone);
  check(gone.member.localDisplayName === "alice", "by alice", gone);
  await a.apiDeleteChat(ChatType.Group, two.groupId);

  // bob leaves the first group; alice hears of it
  const left = await b.apiLeaveGroup(inv.groupInfo.groupId);
  check(left.membership.memberStatus === "memLeft", "bob left", left.membership);
  const leftEvent = await eventA("leftMember");
  check(leftEvent.member.localDisplayName === "bob", "alice sees bob leave", leftEvent);

  // and alice deletes bob
  await a.apiDeleteChat(ChatType.Direct, bobId);
  const after = await a.apiGetChats(ua.userId);
  check(!after.some((c) => c.chatInfo.type === "direct"), "bob is gone", after);

  await a.disconnect();
  await b.disconnect();
}

const timer = setTimeout(() => {
  console.error("compat.mjs: timed out");
  process.exit(2);
}, 50000);
main().then(
  () => {
    clearTimeout(timer);
    console.log("compat.mjs: all checks passed");
    process.exit(0);
  },
  (e) => {
    console.error(e instanceof ChatCommandError ? `${e.message}: ${JSON.stringify(e.response)}` : e);
    process.exit(1);
  },
);
