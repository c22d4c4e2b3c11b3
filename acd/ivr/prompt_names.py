"""Names of the sound files the engine itself plays (not named in a flow).

One place for them: the hold loop, the fallbacks and the number composer
play these; ``acd prompts build`` renders them and the start-up check and
``acd flow validate --sounds`` look for them.  Names are as Asterisk takes
them: without extension, looked up per channel language
(``sounds/<lang>/acd/...``).
"""

from __future__ import annotations

# ------------------------------------------------------------ while queued
#: "You are caller number" <N>
YOU_ARE_CALLER = "acd/you-are-caller"
#: "Your expected wait is about" <M>
EXPECTED_WAIT = "acd/expected-wait"
#: "minutes"
MINUTES = "acd/minutes"
#: "Your expected wait is less than a minute." (said instead of the two
#: above when the expected wait is under a minute, see acd/runtime/hold.py)
EXPECTED_WAIT_UNDER_A_MINUTE = "acd/expected-wait-under-a-minute"

# ----------------------------------------------------------- fallbacks
CALLBACK_REGISTERED = "acd/callback-registered"
SMS_SENT = "acd/sms-sent"
LEAVE_MESSAGE = "acd/leave-message"
ALL_BUSY_CALL_LATER = "acd/all-busy-call-later"
#: played by the dialplan (asterisk_conf/extensions.conf, [acd-recover])
ONE_MOMENT = "acd/one-moment"

# ------------------------------------------------------------ money units
YUAN = "acd/yuan"
JIAO = "acd/jiao"
FEN = "acd/fen"

# ------------------------------- numbers, dates and times, composed by the engine
#: digits 0-9, then the units ten, hundred, thousand, ten thousand (万) and
#: hundred million (亿); ``liang`` is 两 (2 before a unit), ``minus`` 负,
#: ``point`` 点 (the decimal point)
NUM_DIGITS = tuple(f"acd/num/{d}" for d in range(10))
NUM_10 = "acd/num/10"
NUM_100 = "acd/num/100"
NUM_1000 = "acd/num/1000"
NUM_10000 = "acd/num/10000"
NUM_100000000 = "acd/num/100000000"
NUM_LIANG = "acd/num/liang"
NUM_MINUS = "acd/num/minus"
NUM_POINT = "acd/num/point"
NUMBER_PROMPTS = (*NUM_DIGITS, NUM_10, NUM_100, NUM_1000, NUM_10000, NUM_100000000,
                  NUM_LIANG, NUM_MINUS, NUM_POINT)

DATE_YEAR = "acd/date/year"      # 年
DATE_MONTH = "acd/date/month"    # 月
DATE_DAY = "acd/date/day"        # 日
#: 星期一 .. 星期日 (Monday = 1)
WEEKDAYS = tuple(f"acd/date/weekday-{d}" for d in range(1, 8))
TIME_HOUR = "acd/time/hour"      # 点
TIME_MINUTE = "acd/time/minute"  # 分
TIME_AM = "acd/time/am"          # 上午
TIME_PM = "acd/time/pm"          # 下午
DATE_TIME_PROMPTS = (DATE_YEAR, DATE_MONTH, DATE_DAY, *WEEKDAYS, TIME_HOUR, TIME_MINUTE,
                     TIME_AM, TIME_PM)

# ------------------------------------------------- Asterisk's own core sounds
#: played by GET DATA when the caller is already typing
SILENCE = "silence/1"
#: before RECORD FILE
BEEP = "beep"
#: before a negative amount of money said by Asterisk (SAY NUMBER says the rest)
MINUS = "digits/minus"

#: what the engine may play besides a flow's prompts (number prompts apart)
ENGINE_PROMPTS = (YOU_ARE_CALLER, EXPECTED_WAIT, MINUTES, EXPECTED_WAIT_UNDER_A_MINUTE,
                  CALLBACK_REGISTERED, SMS_SENT, LEAVE_MESSAGE, ALL_BUSY_CALL_LATER, ONE_MOMENT,
                  YUAN, JIAO, FEN)
