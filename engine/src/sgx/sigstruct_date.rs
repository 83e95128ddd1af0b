//! The SIGSTRUCT DATE field: a calendar date stored as the BCD number `0xYYYYMMDD`,
//! little-endian (byte 20 = day, 21 = month, 22–23 = year).

use std::fmt;
use std::str::FromStr;

/// A validated calendar date (year 0..=9999, real month and day, leap years included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SigstructDate {
    year: u16,
    month: u8,
    day: u8,
}

/// Why a date was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// The year is above 9999 (four BCD digits).
    #[error("year {0} is outside 0..=9999")]
    Year(u16),
    /// The month is not 1..=12.
    #[error("month {0} is outside 1..=12")]
    Month(u8),
    /// The day does not exist in that month.
    #[error("day {day} does not exist in {year:04}-{month:02}")]
    Day {
        /// The year.
        year: u16,
        /// The month.
        month: u8,
        /// The refused day.
        day: u8,
    },
    /// A nibble of the stored DATE is not a decimal digit.
    #[error("DATE bytes {0:02x?} are not binary-coded decimal")]
    NotBcd([u8; 4]),
    /// A text date is not `YYYY-MM-DD`.
    #[error("date {0:?} is not YYYY-MM-DD")]
    Format(String),
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Packs a value below 10^digits into BCD.
fn to_bcd(mut value: u32, digits: u32) -> u32 {
    let mut out = 0;
    for i in 0..digits {
        out |= (value % 10) << (4 * i);
        value /= 10;
    }
    out
}

/// Unpacks BCD; `None` if a nibble is above 9.
fn from_bcd(mut bcd: u32, digits: u32) -> Option<u32> {
    let mut out = 0;
    let mut scale = 1;
    for _ in 0..digits {
        let nibble = bcd & 0xF;
        if nibble > 9 {
            return None;
        }
        out += nibble * scale;
        scale *= 10;
        bcd >>= 4;
    }
    Some(out)
}

impl SigstructDate {
    /// A date from year, month (1..=12) and day, checked against the calendar.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, DateError> {
        if year > 9999 {
            return Err(DateError::Year(year));
        }
        if !(1..=12).contains(&month) {
            return Err(DateError::Month(month));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(DateError::Day { year, month, day });
        }
        Ok(Self { year, month, day })
    }

    /// The year.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// The month, 1..=12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// The day of the month, from 1.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// The BCD number `0xYYYYMMDD`.
    pub fn to_bcd(&self) -> u32 {
        (to_bcd(u32::from(self.year), 4) << 16)
            | (to_bcd(u32::from(self.month), 2) << 8)
            | to_bcd(u32::from(self.day), 2)
    }

    /// The four stored bytes (the BCD number, little-endian).
    pub fn to_bytes(&self) -> [u8; 4] {
        self.to_bcd().to_le_bytes()
    }

    /// Reads the four stored bytes: BCD digits, then a calendar check.
    pub fn from_bytes(bytes: [u8; 4]) -> Result<Self, DateError> {
        let bcd = u32::from_le_bytes(bytes);
        let not_bcd = || DateError::NotBcd(bytes);
        let year = from_bcd(bcd >> 16, 4).ok_or_else(not_bcd)?;
        let month = from_bcd((bcd >> 8) & 0xFF, 2).ok_or_else(not_bcd)?;
        let day = from_bcd(bcd & 0xFF, 2).ok_or_else(not_bcd)?;
        // The digit counts bound the values: year < 10^4, month and day < 100.
        let year = u16::try_from(year).map_err(|_| not_bcd())?;
        let month = u8::try_from(month).map_err(|_| not_bcd())?;
        let day = u8::try_from(day).map_err(|_| not_bcd())?;
        Self::new(year, month, day)
    }
}

impl fmt::Display for SigstructDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for SigstructDate {
    type Err = DateError;

    /// Parses `YYYY-MM-DD` (also accepts `YYYYMMDD`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let format = || DateError::Format(s.to_string());
        let digits: String = s.chars().filter(|c| *c != '-').collect();
        let dashed_ok = s.len() == 10
            && s.as_bytes().get(4) == Some(&b'-')
            && s.as_bytes().get(7) == Some(&b'-');
        if digits.len() != 8
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || !(dashed_ok || s.len() == 8)
        {
            return Err(format());
        }
        let year = digits
            .get(0..4)
            .and_then(|x| x.parse().ok())
            .ok_or_else(format)?;
        let month = digits
            .get(4..6)
            .and_then(|x| x.parse().ok())
            .ok_or_else(format)?;
        let day = digits
            .get(6..8)
            .and_then(|x| x.parse().ok())
            .ok_or_else(format)?;
        Self::new(year, month, day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcd_layout_matches_the_spec() {
        let d = SigstructDate::new(2016, 1, 9).unwrap();
        assert_eq!(d.to_bcd(), 0x2016_0109);
        assert_eq!(d.to_bytes(), [0x09, 0x01, 0x16, 0x20]);
        assert_eq!(SigstructDate::from_bytes(d.to_bytes()).unwrap(), d);
    }

    #[test]
    fn calendar_is_checked() {
        assert!(SigstructDate::new(2024, 2, 29).is_ok());
        assert_eq!(
            SigstructDate::new(2023, 2, 29),
            Err(DateError::Day {
                year: 2023,
                month: 2,
                day: 29
            })
        );
        assert!(SigstructDate::new(1900, 2, 29).is_err());
        assert!(SigstructDate::new(2000, 2, 29).is_ok());
        assert_eq!(SigstructDate::new(2020, 13, 1), Err(DateError::Month(13)));
        assert_eq!(SigstructDate::new(10000, 1, 1), Err(DateError::Year(10000)));
        assert!(SigstructDate::new(2020, 4, 31).is_err());
    }

    #[test]
    fn non_bcd_bytes_are_refused() {
        assert!(matches!(
            SigstructDate::from_bytes([0x0A, 0x01, 0x16, 0x20]),
            Err(DateError::NotBcd(_))
        ));
        assert!(matches!(
            SigstructDate::from_bytes([0x00, 0x01, 0x16, 0x20]),
            Err(DateError::Day { .. })
        ));
    }

    #[test]
    fn text_round_trip() {
        let d: SigstructDate = "2025-01-02".parse().unwrap();
        assert_eq!(d.to_string(), "2025-01-02");
        assert_eq!("20250102".parse::<SigstructDate>().unwrap(), d);
        assert!("2025-1-02".parse::<SigstructDate>().is_err());
        assert!("2025/01/02".parse::<SigstructDate>().is_err());
        assert!("2025-02-30".parse::<SigstructDate>().is_err());
    }
}
