//! Durations and sizes as operators write them: `"30s"`, `"250ms"`, `"1MiB"`.

use std::{fmt, time::Duration};

use serde::{de, Deserialize, Deserializer};

/// A duration parsed from a human string (`"30s"`, `"1m 30s"`, `"250ms"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"30s\", \"250ms\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                humantime::parse_duration(v.trim())
                    .map(HumanDuration)
                    .map_err(|e| E::custom(format!("invalid duration {v:?}: {e}")))
            }
        }
        d.deserialize_str(V)
    }
}

/// A byte count parsed from `"16KiB"`, `"1 MiB"`, `"10MB"` or a plain integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanSize(pub u64);

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = HumanSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"16KiB\", \"1MiB\" or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(HumanSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(HumanSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let t = v.trim();
                if let Ok(n) = t.parse::<u64>() {
                    return Ok(HumanSize(n));
                }
                t.parse::<bytesize::ByteSize>()
                    .map(|b| HumanSize(b.as_u64()))
                    .map_err(|_| E::custom(format!("invalid size {v:?} (use e.g. \"16KiB\")")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        d: HumanDuration,
        s: HumanSize,
    }

    fn parse(src: &str) -> Result<T, toml_like::Error> {
        toml_like::from_str(src)
    }

    // figment's toml provider is the real path; serde_json is enough to test the visitors.
    mod toml_like {
        pub use serde_json::{from_str, Error};
    }

    #[test]
    fn human_strings_parse() {
        let t = parse(r#"{"d":"1m 30s","s":"1MiB"}"#).unwrap();
        assert_eq!(t.d.0, Duration::from_secs(90));
        assert_eq!(t.s.0, 1024 * 1024);
        let t = parse(r#"{"d":"250ms","s":"16 KiB"}"#).unwrap();
        assert_eq!(t.d.0, Duration::from_millis(250));
        assert_eq!(t.s.0, 16 * 1024);
        assert_eq!(parse(r#"{"d":"1s","s":4096}"#).unwrap().s.0, 4096);
    }

    #[test]
    fn nonsense_is_refused_with_the_value() {
        let e = parse(r#"{"d":"soon","s":1}"#).err().unwrap().to_string();
        assert!(e.contains("invalid duration \"soon\""), "{e}");
        let e = parse(r#"{"d":"1s","s":"lots"}"#).err().unwrap().to_string();
        assert!(e.contains("invalid size \"lots\""), "{e}");
        assert!(parse(r#"{"d":"1s","s":-1}"#).is_err());
    }
}
