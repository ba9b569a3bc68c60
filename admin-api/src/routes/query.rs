//! Query strings read strictly: every parameter must be one the route takes,
//! given once, with a value of its type. Serde does the reading; its error
//! hooks (`unknown_field`, `missing_field`, `duplicate_field`) and the value
//! reader below say which parameter was wrong, so the answer names it in
//! `field` without anyone parsing a message.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor,
    value::{MapAccessDeserializer, StrDeserializer},
};

use crate::error::ApiError;

/// Reads `T`, a `#[serde(deny_unknown_fields)]` struct, from the decoded
/// `(name, value)` pairs of a query string.
pub(super) fn from_pairs<T: DeserializeOwned>(pairs: &[(String, String)]) -> Result<T, ApiError> {
    let params = Params {
        pairs: pairs.iter(),
        current: None,
    };
    T::deserialize(MapAccessDeserializer::new(params)).map_err(ApiError::from)
}

/// A page's `limit`: `default` when not given, else 1..=`max` (422 naming
/// `limit` beyond).
pub(super) fn page_limit(
    limit: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match limit.unwrap_or(default) {
        limit @ 1.. if limit <= max => Ok(limit),
        _ => Err(
            ApiError::Unprocessable(vec![format!("limit must be 1..={max}")]).for_field("limit"),
        ),
    }
}

/// `value` as one of `names`, read as `T` (whose serde names they are),
/// else 400 naming `field` and the names it takes.
pub(super) fn one_of<T: DeserializeOwned>(
    field: &str,
    value: Option<String>,
    names: &[&str],
) -> Result<Option<T>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let refused = || {
        ApiError::bad_request(format!(
            "query parameter `{field}` must be one of {}, not `{}`",
            names.join(", "),
            crate::types::v1::limits::shown(&value)
        ))
        .for_field(field)
    };
    if !names.contains(&value.as_str()) {
        return Err(refused());
    }
    serde_json::from_value(serde_json::Value::String(value.clone()))
        .map(Some)
        .map_err(|_| refused())
}

/// Why a query string was refused.
#[derive(Debug)]
pub(super) enum QueryError {
    Unknown {
        name: String,
        accepted: &'static [&'static str],
    },
    Missing(&'static str),
    Repeated(&'static str),
    /// A value that is not what its parameter takes; `name` is filled in by
    /// the map reader, which knows whose value failed.
    Invalid {
        name: Option<String>,
        message: String,
    },
}

impl QueryError {
    fn at(self, name: &str) -> Self {
        match self {
            Self::Invalid {
                name: None,
                message,
            } => Self::Invalid {
                name: Some(name.to_owned()),
                message,
            },
            other => other,
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Self::Unknown { name, .. } => Some(name),
            Self::Missing(name) | Self::Repeated(name) => Some(name),
            Self::Invalid { name, .. } => name.as_deref(),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown { name, accepted: [] } => write!(
                f,
                "unknown query parameter `{name}`: this route takes no query parameters"
            ),
            Self::Unknown { name, accepted } => write!(
                f,
                "unknown query parameter `{name}`: this route takes `{}`",
                accepted.join("`, `")
            ),
            Self::Missing(name) => write!(f, "query parameter `{name}` is required"),
            Self::Repeated(name) => write!(f, "query parameter `{name}` is given more than once"),
            Self::Invalid {
                name: Some(name),
                message,
            } => write!(f, "query parameter `{name}` {message}"),
            Self::Invalid {
                name: None,
                message,
            } => write!(f, "query string: {message}"),
        }
    }
}

impl std::error::Error for QueryError {}

impl de::Error for QueryError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::Invalid {
            name: None,
            message: msg.to_string(),
        }
    }

    /// Worded to follow "query parameter `x`", like the value reader's own.
    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format_args!("must be {expected}, not {unexpected}"))
    }

    fn invalid_value(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::invalid_type(unexpected, expected)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::Unknown {
            name: field.to_owned(),
            accepted: expected,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self::Missing(field)
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::Repeated(field)
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let error = ApiError::bad_request(e.to_string());
        match e.name() {
            Some(name) => error.for_field(name),
            None => error,
        }
    }
}

/// The pairs as a map, remembering whose value is read next.
struct Params<'a> {
    pairs: std::slice::Iter<'a, (String, String)>,
    current: Option<&'a (String, String)>,
}

impl<'de> MapAccess<'de> for Params<'de> {
    type Error = QueryError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, QueryError> {
        self.current = self.pairs.next();
        self.current
            .map(|(name, _)| seed.deserialize(StrDeserializer::new(name)))
            .transpose()
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, QueryError> {
        let (name, text) = self
            .current
            .ok_or_else(|| de::Error::custom("a value asked for before its name"))?;
        seed.deserialize(Text(text)).map_err(|e| e.at(name))
    }
}

/// One parameter's text, parsed into the type of its field: a query string
/// has no types of its own, so numbers and flags are read from the text.
struct Text<'de>(&'de str);

impl Text<'_> {
    fn parse<T: std::str::FromStr>(&self, what: fmt::Arguments<'_>) -> Result<T, QueryError> {
        self.0
            .parse()
            .map_err(|_| de::Error::custom(format_args!("must be {what}, not `{}`", self.0)))
    }
}

/// Deserializer methods that parse the text as `$ty` and hand it to the
/// visitor, which checks any narrower range (`u8`, `usize`, ...).
macro_rules! parse_as {
    ($ty:ty, $visit:ident, $what:tt: $($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
            visitor.$visit(self.parse::<$ty>(format_args! $what)?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Text<'de> {
    type Error = QueryError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, QueryError> {
        visitor.visit_newtype_struct(self)
    }

    parse_as!(bool, visit_bool, ("true or false"): deserialize_bool);
    parse_as!(u64, visit_u64, ("an integer 0..={}", u64::MAX):
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64);
    parse_as!(i64, visit_i64, ("an integer {}..={}", i64::MIN, i64::MAX):
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64);
    parse_as!(f64, visit_f64, ("a number"): deserialize_f32 deserialize_f64);

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
