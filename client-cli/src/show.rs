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

    /// Just the time of day, `14:02`, for a sentence.
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
        if let Ok(ms) = text.parse::<i64>() {
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

/// Text from others, fit for the terminal: as written, line breaks and tabs
/// kept, other control characters shown escaped; each further line
/// indented by `indent`, so a message reads as one block.
pub fn text_block(text: &str, indent: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.trim_end_matches(['\n', '\r']).split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
            out.push_str(indent);
        }
        for c in line.trim_end_matches('\r').chars() {
            if c == '\t' || !c.is_control() {
                out.push(c);
            } else {
                out.extend(c.escape_default());
            }
        }
    }
    out
}

/// An id shortened for reading: its first 8 characters and an ellipsis.
pub fn short(id: &str) -> String {
    if id.chars().count() > 10 {
        let head: String = id.chars().take(8).collect();
        format!("{head}…")
    } else {
        id.to_owned()
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
        assert_eq!(text_block("tab\there\r\n", ""), "tab\there");
        assert_eq!(short("0123456789abcdef"), "01234567…");
    }
}
