//! How the CLI shows what people read: times in the local time zone (or
//! UTC with `--utc`) in ISO 8601, and text as written, several lines
//! included, but never a control character that could rewrite the
//! terminal.

use jiff::tz::TimeZone;
use jiff::{Timestamp, civil};

/// How times are shown.
#[derive(Debug, Clone)]
pub struct Times {
    zone: TimeZone,
}

impl Times {
    /// Local time (the system's zone, or `TZ`), or UTC.
    pub fn new(utc: bool) -> Self {
        let zone = if utc {
            TimeZone::UTC
        } else {
            TimeZone::try_system().unwrap_or(TimeZone::UTC)
        };
        Self { zone }
    }

    /// `time_ms` as ISO 8601 to the second, with the zone's offset:
    /// `2026-12-06T14:02:11+01:00` (`Z` in UTC).
    pub fn at(&self, time_ms: i64) -> String {
        match Timestamp::from_millisecond(time_ms) {
            Ok(at) => {
                let zoned = at.to_zoned(self.zone.clone());
                if self.zone == TimeZone::UTC {
                    zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
                } else {
                    zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
                }
            }
            Err(_) => time_ms.to_string(),
        }
    }

    /// The date and time to the minute, `2026-12-06 14:02`, for a
    /// sentence.
    pub fn clock(&self, time_ms: i64) -> String {
        match Timestamp::from_millisecond(time_ms) {
            Ok(at) => at
                .to_zoned(self.zone.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string(),
            Err(_) => time_ms.to_string(),
        }
    }

    /// Reads a time as people give one: a date (`2026-12-06`, its start in
    /// this zone), a date and time without a zone (`2026-12-06T09:30`, in
    /// this zone), RFC 3339 with an offset or `Z`, or Unix milliseconds.
    pub fn parse(&self, text: &str) -> Result<i64, String> {
        let text = text.trim();
        // Milliseconds have at least 10 digits since 1970-01-12; anything
        // shorter (a year, say) is not taken for them.
        if text.len() >= 10
            && text.bytes().all(|byte| byte.is_ascii_digit())
            && let Ok(ms) = text.parse::<i64>()
        {
            return Ok(ms);
        }
        if let Ok(at) = text.parse::<Timestamp>() {
            return Ok(at.as_millisecond());
        }
        let civil_time = text.parse::<civil::DateTime>().or_else(|_| {
            text.parse::<civil::Date>()
                .map(|date| date.to_datetime(civil::Time::midnight()))
        });
        match civil_time {
            Ok(civil_time) => civil_time
                .to_zoned(self.zone.clone())
                .map(|zoned| zoned.timestamp().as_millisecond())
                .map_err(|_| format!("{text:?} does not exist in this time zone")),
            Err(_) => Err(format!(
                "{text:?} is not a time: give a date such as 2026-12-06, a time such as \
                 2026-12-06T09:30 (local) or 2026-12-06T09:30:00Z, or Unix milliseconds"
            )),
        }
    }
}

/// Whether `c` must not reach the terminal as it is: a control character
/// (which could drive the terminal), or an invisible one that changes how
/// the rest of the line reads (bidirectional marks, overrides and
/// isolates, zero widths, soft hyphens, tags, the byte-order mark, line
/// separators), which could make a name or a message look like something
/// else.
fn hidden(c: char) -> bool {
    // Unicode's format characters (category Cf) and the line and paragraph
    // separators.
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    if hidden(c) {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

/// One line of text from elsewhere (a name, a subject, an id, a server's
/// message), fit for the terminal: what must not reach it is shown
/// escaped (`\u{1b}`).
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// Text from others, fit for the terminal: as written, line breaks and tabs
/// kept, what must not reach the terminal shown escaped; each further line
/// indented by `indent`, so a message reads as one block.
pub fn text_block(text: &str, indent: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.trim_end_matches(['\n', '\r']).split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
            out.push_str(indent);
        }
        for c in line.trim_end_matches('\r').chars() {
            if c == '\t' {
                out.push(c);
            } else {
                push_escaped(&mut out, c);
            }
        }
    }
    out
}

/// An id shortened for reading: its first 8 characters and an ellipsis
/// (escaped as [`printable`] does: ids come from the server).
pub fn short(id: &str) -> String {
    if id.chars().count() > 10 {
        let head: String = id.chars().take(8).collect();
        format!("{}…", printable(&head))
    } else {
        printable(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_and_show_in_iso_8601() {
        let utc = Times::new(true);
        assert_eq!(utc.at(1_796_825_844_347), "2026-12-09T14:17:24Z");
        assert_eq!(utc.parse("2026-12-06").unwrap(), 1_796_515_200_000);
        assert_eq!(utc.parse("2026-12-06T01:00").unwrap(), 1_796_518_800_000);
        assert_eq!(
            utc.parse("2026-12-06T01:00:00Z").unwrap(),
            1_796_518_800_000
        );
        assert_eq!(
            utc.parse("2026-12-06T02:00:00+01:00").unwrap(),
            1_796_518_800_000
        );
        assert_eq!(utc.parse("1796518800000").unwrap(), 1_796_518_800_000);
        assert!(utc.parse("yesterday").unwrap_err().contains("2026-12-06"));
        assert!(utc.parse("2026").is_err());
        assert!(utc.parse("-1234567890").is_err());
        let paris = Times {
            zone: TimeZone::get("Europe/Paris").unwrap(),
        };
        assert_eq!(paris.at(1_796_518_800_000), "2026-12-06T02:00:00+01:00");
        assert_eq!(paris.parse("2026-12-06").unwrap(), 1_796_511_600_000);
    }

    #[test]
    fn text_keeps_its_lines_but_not_terminal_controls() {
        assert_eq!(text_block("one\ntwo\n", "  "), "one\n  two");
        assert_eq!(text_block("a\u{1b}[2Jb", ""), "a\\u{1b}[2Jb");
        assert_eq!(
            text_block("evil\u{202E}gpj.exe\u{200B}", ""),
            "evil\\u{202e}gpj.exe\\u{200b}"
        );
        assert_eq!(printable("Dr.\u{2067} Ana\u{7}"), "Dr.\\u{2067} Ana\\u{7}");
        assert_eq!(printable("Łukasz Ørsted"), "Łukasz Ørsted");
        assert_eq!(
            printable("a\u{061C}b\u{E0041}c\u{2028}"),
            "a\\u{61c}b\\u{e0041}c\\u{2028}"
        );
        assert_eq!(short("\u{1b}[2J0123456789"), "\\u{1b}[2J0123…");
        assert_eq!(text_block("tab\there\r\n", ""), "tab\there");
        assert_eq!(short("0123456789abcdef"), "01234567…");
    }
}
