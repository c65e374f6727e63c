//! The error convention every wasm-hotswap crate follows: one enum per crate, each variant
//! with a stable machine-readable code and the details a caller may need, named as JS sees
//! them. [`coded_error!`](crate::coded_error) writes the enum (its `Display` comes from
//! `thiserror`), `code()`, `details()` and the TypeScript of the details from one definition,
//! so the code, the details and their types cannot drift apart.

use crate::{AbiVersion, FuncSig};

/// A detail of an error, as it reaches JS.
#[derive(Clone, Debug, PartialEq)]
pub enum Detail {
    /// A string.
    Text(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Flag(bool),
}

/// A type an error detail may have, with its TypeScript spelling.
pub trait IntoDetail {
    /// The TypeScript type of the detail.
    const TS: &'static str;
    /// The detail's value.
    fn to_detail(&self) -> Detail;
}

macro_rules! number_details {
    ($($t:ty),*) => {$(
        impl IntoDetail for $t {
            const TS: &'static str = "number";
            fn to_detail(&self) -> Detail {
                Detail::Number(*self as f64)
            }
        }
    )*};
}
number_details!(u16, u32, u64, usize, i32);

impl IntoDetail for bool {
    const TS: &'static str = "boolean";
    fn to_detail(&self) -> Detail {
        Detail::Flag(*self)
    }
}

macro_rules! text_details {
    ($($t:ty),*) => {$(
        impl IntoDetail for $t {
            const TS: &'static str = "string";
            fn to_detail(&self) -> Detail {
                Detail::Text(self.to_string())
            }
        }
    )*};
}
text_details!(String, FuncSig, AbiVersion);

#[doc(hidden)]
pub mod __private {
    pub use const_format::concatcp;
}

/// Define an error enum whose variants carry stable codes and typed details.
///
/// ```
/// use hotswap_abi::coded_error;
///
/// coded_error! {
///     /// Why a thing failed.
///     #[derive(Debug)]
///     pub enum ThingError {
///         wraps {}
///         codes {
///             /// Too big.
///             #[error("{actual} bytes exceed the limit of {limit}")]
///             TooLarge "TOO_LARGE" { limit as "limit": u64, actual as "actual": u64 },
///             /// Broken, for a reason only the message tells.
///             #[error("broken: {why}")]
///             Broken "BROKEN" { why: String },
///         }
///     }
/// }
///
/// let e = ThingError::TooLarge { limit: 1, actual: 2 };
/// assert_eq!((e.code(), e.to_string().as_str()), ("TOO_LARGE", "2 bytes exceed the limit of 1"));
/// let mut details = Vec::new();
/// e.details(&mut |name, value| details.push((name, value)));
/// assert_eq!(details.len(), 2);
/// assert_eq!(ThingError::TS_DETAILS, "  TOO_LARGE: { limit: number; actual: number; };\n  BROKEN: { };\n");
/// ```
///
/// `wraps { Variant(Inner), … }` embeds another coded error whole (its codes, details and
/// TypeScript become this enum's); `codes { … }` lists the variants of this crate, each
/// `Name "CODE" { field as "jsName": Type, … }` — fields without `as` stay out of the
/// details (they are in the message). The using crate depends on `thiserror`.
#[macro_export]
macro_rules! coded_error {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            wraps { $( $(#[$wattr:meta])* $wrap:ident($inner:ty) ),* $(,)? }
            codes {
                $(
                    $(#[$vattr:meta])*
                    $variant:ident $code:literal {
                        $( $(#[$fattr:meta])* $field:ident $(as $js:literal)? : $fty:ty ),* $(,)?
                    }
                ),* $(,)?
            }
        }
    ) => {
        $(#[$meta])*
        #[derive(::thiserror::Error)]
        #[non_exhaustive]
        $vis enum $name {
            $(
                $(#[$wattr])*
                #[error(transparent)]
                $wrap(#[from] $inner),
            )*
            $(
                $(#[$vattr])*
                $variant { $( $(#[$fattr])* $field: $fty ),* },
            )*
        }

        impl $name {
            /// The stable, machine-readable code of this error (`error.code` in JS).
            pub fn code(&self) -> &'static str {
                match self {
                    $( Self::$wrap(inner) => inner.code(), )*
                    $( Self::$variant { .. } => $code, )*
                }
            }

            /// The details JS sees next to `code`, each under its name.
            #[allow(unused_variables)]
            pub fn details(&self, out: &mut dyn FnMut(&'static str, $crate::Detail)) {
                match self {
                    $( Self::$wrap(inner) => inner.details(out), )*
                    $( Self::$variant { $($field),* } => {
                        $( $( out($js, $crate::IntoDetail::to_detail($field)); )? )*
                    } )*
                }
            }

            /// TypeScript: one `CODE: { name: type; … };` member per code, for an interface
            /// that maps codes to their details.
            pub const TS_DETAILS: &'static str = $crate::__private::concatcp!(
                $( <$inner>::TS_DETAILS, )*
                $( "  ", $code, ": {", $( $( " ", $js, ": ", <$fty as $crate::IntoDetail>::TS, ";", )? )* " };\n", )*
            );
        }
    };
}
