"""The squaring bot of the simplex-chat Python library's README, as its users write it:
the test runs it unmodified with `parley bot squaring_bot.py -s RELAY` from this folder's
copy in a temporary directory."""

import re

from simplex_chat import Bot, BotProfile, Message, SqliteDb, TextMessage

bot = Bot(
    profile=BotProfile(display_name="Squaring bot"),
    db=SqliteDb(file_prefix="./squaring_bot"),
    welcome="Send me a number, I'll square it.",
)


@bot.on_message(content_type="text", text=re.compile(r"^-?\d+(\.\d+)?$"))
async def square(msg: TextMessage) -> None:
    n = float(msg.text or "0")
    await msg.reply(f"{n} * {n} = {n * n}")


@bot.on_message(content_type="text")
async def fallback(msg: Message) -> None:  # type: ignore[type-arg]
    await msg.reply("Send me a number, like 7 or 3.14.")


if __name__ == "__main__":
    bot.run()
