//! Crossing the JS boundary: reading the plain objects apps pass in, building the ones they
//! get back, and the TypeScript of both. Each type is defined once, with [`js_input!`],
//! [`js_output!`] or [`js_union!`]; the macro writes the Rust type, its conversion and its
//! TypeScript declaration, so the types shipped in the package cannot drift from what the
//! code reads and writes. Errors follow the same idea with `hotswap_abi::coded_error!`.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::LoaderError;

/// A type that crosses the boundary, with its TypeScript spelling.
///
/// The TypeScript constants here and the `TS_DECL`s the macros write are read only by
/// `#[wasm_bindgen(typescript_custom_section)]` (api.rs), which rustc does not count as a
/// use: they carry `#[allow(dead_code)]`. `npm test` typechecks what they produce.
#[allow(dead_code)]
pub(crate) trait JsType {
    /// The TypeScript type.
    const TS: &'static str;
    /// `"?"` for optional members (`Option`), else `""`.
    const MARK: &'static str = "";
}

/// Read from a JS value; `path` names it in errors (`options.limits.maxModuleBytes`).
pub(crate) trait FromJs: Sized + JsType {
    /// The value, or a typed error naming `path`.
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError>;

    /// The value of a member left out, which has no default: an error, unless optional.
    fn missing(path: &str) -> Result<Self, LoaderError> {
        Err(invalid(path, "present (it is required)"))
    }
}

/// Written as a JS value.
pub(crate) trait ToJs: JsType {
    /// The value.
    fn to_js(&self) -> JsValue;
}

/// `"?"`: marks a member that has a default as optional in TypeScript.
#[allow(dead_code)]
pub(crate) const fn optional(_default: &str) -> &'static str {
    "?"
}

impl JsType for u32 {
    const TS: &'static str = "number";
}
impl JsType for i32 {
    const TS: &'static str = "number";
}
impl JsType for u64 {
    const TS: &'static str = "number";
}
impl JsType for f64 {
    const TS: &'static str = "number";
}
impl JsType for bool {
    const TS: &'static str = "boolean";
}
impl JsType for String {
    const TS: &'static str = "string";
}
impl JsType for Vec<String> {
    const TS: &'static str = "string[]";
}
impl JsType for Vec<u32> {
    const TS: &'static str = "number[]";
}
impl<T: JsType> JsType for Option<T> {
    const TS: &'static str = T::TS;
    const MARK: &'static str = "?";
}

/// The largest integer a JS number holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

fn number(value: &JsValue, path: &str, max: f64, integer: bool) -> Result<f64, LoaderError> {
    match value.as_f64() {
        Some(n) if n.is_finite() && n >= 0.0 && n <= max && (!integer || n.fract() == 0.0) => Ok(n),
        _ => Err(invalid(path, if integer { "a whole number of at least 0" } else { "a number of at least 0" })),
    }
}

impl FromJs for u32 {
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError> {
        Ok(number(value, path, f64::from(u32::MAX), true)? as u32)
    }
}
impl FromJs for u64 {
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError> {
        Ok(number(value, path, MAX_SAFE_INTEGER, true)? as u64)
    }
}
impl FromJs for f64 {
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError> {
        number(value, path, f64::MAX, false)
    }
}
impl FromJs for bool {
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError> {
        value.as_bool().ok_or_else(|| invalid(path, "true or false"))
    }
}
impl FromJs for String {
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError> {
        value.as_string().ok_or_else(|| invalid(path, "a string"))
    }
}
impl FromJs for Vec<String> {
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError> {
        let array: &Array =
            value.dyn_ref().filter(|_| Array::is_array(value)).ok_or_else(|| invalid(path, "an array of strings"))?;
        array.iter().enumerate().map(|(i, item)| String::from_js(&item, &format!("{path}[{i}]"))).collect()
    }
}
impl<T: FromJs> FromJs for Option<T> {
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError> {
        if value.is_undefined() {
            return Ok(None);
        }
        T::from_js(value, path).map(Some)
    }

    fn missing(_: &str) -> Result<Self, LoaderError> {
        Ok(None)
    }
}

impl ToJs for u32 {
    fn to_js(&self) -> JsValue {
        JsValue::from(*self)
    }
}
impl ToJs for i32 {
    fn to_js(&self) -> JsValue {
        JsValue::from(*self)
    }
}
impl ToJs for u64 {
    fn to_js(&self) -> JsValue {
        JsValue::from_f64(*self as f64)
    }
}
impl ToJs for f64 {
    fn to_js(&self) -> JsValue {
        JsValue::from_f64(*self)
    }
}
impl ToJs for bool {
    fn to_js(&self) -> JsValue {
        JsValue::from_bool(*self)
    }
}
impl ToJs for String {
    fn to_js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}
impl ToJs for Vec<String> {
    fn to_js(&self) -> JsValue {
        self.iter().map(|s| JsValue::from_str(s)).collect::<Array>().into()
    }
}
impl ToJs for Vec<u32> {
    fn to_js(&self) -> JsValue {
        self.iter().map(|n| JsValue::from(*n)).collect::<Array>().into()
    }
}

/// A string union: a Rust enum whose variants are written as the given strings.
macro_rules! js_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $ts:literal {
            $( $(#[doc = $doc:literal])* $variant:ident = $text:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name {
            $( $(#[doc = $doc])* $variant ),*
        }

        impl $name {
            /// The string JS sees.
            pub(crate) fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text ),* }
            }

            /// `export type Name = "a" | "b";`
            #[allow(dead_code)]
            pub(crate) const TS_DECL: &'static str =
                const_format::concatcp!("export type ", $ts, " =", $( " | \"", $text, "\"", )* ";\n");
        }

        impl $crate::js::JsType for $name {
            const TS: &'static str = $ts;
        }

        impl $crate::js::ToJs for $name {
            fn to_js(&self) -> wasm_bindgen::JsValue {
                wasm_bindgen::JsValue::from_str(self.as_str())
            }
        }

        impl $crate::js::FromJs for $name {
            fn from_js(value: &wasm_bindgen::JsValue, path: &str) -> Result<Self, $crate::error::LoaderError> {
                match value.as_string().as_deref() {
                    $( Some($text) => Ok(Self::$variant), )*
                    _ => Err($crate::js::invalid(path, concat!("one of" $(, " \"", $text, "\"")*))),
                }
            }
        }
    };
}
pub(crate) use js_enum;

/// A JSDoc comment from doc attributes.
macro_rules! js_doc {
    ($indent:literal $(, $doc:literal)*) => {
        const_format::concatcp!($indent, "/**", $($doc, )* " */\n")
    };
}
pub(crate) use js_doc;

/// An options object the app passes in: every member optional with a default (`= …`) or
/// required; unknown keys are refused, so a typo such as `limitz` does not pass silently.
macro_rules! js_input {
    (
        $(#[doc = $sdoc:literal])*
        $vis:vis struct $name:ident as $ts:literal $(extends $base:literal)? {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $fty:ty as $js:literal $(= $default:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug)]
        $vis struct $name {
            $( $(#[doc = $doc])* pub(crate) $field: $fty, )*
        }

        impl $name {
            /// The keys this object takes.
            pub(crate) const KEYS: &'static [&'static str] = &[$($js),*];

            /// `export interface Name { … }`
            #[allow(dead_code)]
            pub(crate) const TS_DECL: &'static str = const_format::concatcp!(
                $crate::js::js_doc!("" $(, $sdoc)*),
                "export interface ", $ts, $(" extends ", $base,)? " {\n",
                $(
                    $crate::js::js_doc!("  " $(, $doc)*),
                    "  ", $js, <$fty as $crate::js::JsType>::MARK, $( $crate::js::optional(stringify!($default)), )?
                    ": ", <$fty as $crate::js::JsType>::TS, ";\n",
                )*
                "}\n"
            );

            /// Read the object at `path`, which may also hold the keys `also` (read elsewhere).
            pub(crate) fn from_js_with(
                value: &wasm_bindgen::JsValue,
                path: &str,
                also: &[&str],
            ) -> Result<Self, $crate::error::LoaderError> {
                $crate::js::check_keys(value, path, Self::KEYS, also)?;
                Ok(Self {
                    $( $field: $crate::js::member(value, path, $js, || $crate::js::required_or!($fty; path, $js, $($default)?))?, )*
                })
            }
        }

        /// Every member at its default (required members empty).
        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $crate::js::default_of!($($default)?), )* }
            }
        }

        impl $crate::js::JsType for $name {
            const TS: &'static str = $ts;
        }

        impl $crate::js::FromJs for $name {
            fn from_js(value: &wasm_bindgen::JsValue, path: &str) -> Result<Self, $crate::error::LoaderError> {
                if value.is_undefined() || value.is_null() {
                    return Self::from_js_with(&js_sys::Object::new().into(), path, &[]);
                }
                Self::from_js_with(value, path, &[])
            }
        }
    };
}
pub(crate) use js_input;

/// A member's default: the one given, else its type's.
macro_rules! default_of {
    ($default:expr) => {
        $default
    };
    () => {
        Default::default()
    };
}
pub(crate) use default_of;

/// An object the app gets back.
macro_rules! js_output {
    (
        $(#[doc = $sdoc:literal])*
        $vis:vis struct $name:ident as $ts:literal {
            $( $(#[doc = $doc:literal])* $field:ident : $fty:ty as $js:literal ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq)]
        $vis struct $name {
            $( $(#[doc = $doc])* pub $field: $fty, )*
        }

        impl $name {
            /// `export interface Name { … }`
            #[allow(dead_code)]
            pub(crate) const TS_DECL: &'static str = const_format::concatcp!(
                $crate::js::js_doc!("" $(, $sdoc)*),
                "export interface ", $ts, " {\n",
                $(
                    $crate::js::js_doc!("  " $(, $doc)*),
                    "  readonly ", $js, <$fty as $crate::js::JsType>::MARK, ": ", <$fty as $crate::js::JsType>::TS, ";\n",
                )*
                "}\n"
            );
        }

        impl $crate::js::JsType for $name {
            const TS: &'static str = $ts;
        }

        impl $crate::js::ToJs for $name {
            fn to_js(&self) -> wasm_bindgen::JsValue {
                let object = js_sys::Object::new();
                $( $crate::js::set_member(&object, $js, &self.$field); )*
                object.into()
            }
        }
    };
}
pub(crate) use js_output;

/// A discriminated union of objects, told apart by a `type` member.
macro_rules! js_union {
    (
        $(#[doc = $sdoc:literal])*
        $vis:vis enum $name:ident as $ts:literal {
            $(
                $(#[doc = $vdoc:literal])*
                $variant:ident $tag:literal {
                    $( $(#[doc = $doc:literal])* $field:ident : $fty:ty as $js:literal ),* $(,)?
                }
            ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq)]
        $vis enum $name {
            $(
                $(#[doc = $vdoc])*
                $variant { $( $(#[doc = $doc])* $field: $fty ),* },
            )*
        }

        impl $name {
            /// The `type` member.
            #[allow(dead_code)]
            pub(crate) fn kind(&self) -> &'static str {
                match self { $( Self::$variant { .. } => $tag ),* }
            }

            /// One `export interface HotSwap<Variant>Event` per variant, and the union of them.
            #[allow(dead_code)]
            pub(crate) const TS_DECL: &'static str = const_format::concatcp!(
                $(
                    $crate::js::js_doc!("" $(, $vdoc)*),
                    "export interface HotSwap", stringify!($variant), "Event {\n",
                    "  readonly type: \"", $tag, "\";\n",
                    $(
                        $crate::js::js_doc!("  " $(, $doc)*),
                        "  readonly ", $js, <$fty as $crate::js::JsType>::MARK, ": ", <$fty as $crate::js::JsType>::TS, ";\n",
                    )*
                    "}\n",
                )*
                $crate::js::js_doc!("" $(, $sdoc)*),
                "export type ", $ts, " =", $( "\n  | HotSwap", stringify!($variant), "Event", )* ";\n"
            );
        }

        impl $crate::js::ToJs for $name {
            fn to_js(&self) -> wasm_bindgen::JsValue {
                let object = js_sys::Object::new();
                match self {
                    $(
                        Self::$variant { $($field),* } => {
                            $crate::js::set_member(&object, "type", &String::from($tag));
                            $( $crate::js::set_member(&object, $js, $field); )*
                        }
                    )*
                }
                object.into()
            }
        }

        impl $crate::js::JsType for $name {
            const TS: &'static str = $ts;
        }
    };
}
pub(crate) use js_union;

/// Set `key` on `object` (an `Option` that is `None` is left out).
pub(crate) fn set_member<T: ToJs + JsType>(object: &Object, key: &str, value: &T) {
    let value = value.to_js();
    if !value.is_undefined() {
        let _ = Reflect::set(object, &key.into(), &value);
    }
}

impl<T: ToJs> ToJs for Option<T> {
    fn to_js(&self) -> JsValue {
        self.as_ref().map_or(JsValue::UNDEFINED, ToJs::to_js)
    }
}

/// Member `key` of the object at `path`, or `missing()` when it is absent.
pub(crate) fn member<T: FromJs>(
    object: &JsValue,
    path: &str,
    key: &str,
    missing: impl FnOnce() -> Result<T, LoaderError>,
) -> Result<T, LoaderError> {
    let value = get(object, key);
    if value.is_undefined() {
        return missing();
    }
    T::from_js(&value, &format!("{path}.{key}"))
}

/// The default, or (none given) what the type says of a missing member.
macro_rules! required_or {
    ($fty:ty; $path:expr, $key:expr, $default:expr) => {
        Ok($default)
    };
    ($fty:ty; $path:expr, $key:expr,) => {
        <$fty as $crate::js::FromJs>::missing(&format!("{}.{}", $path, $key))
    };
}
pub(crate) use required_or;

/// Refuse keys other than `keys` and `also`.
pub(crate) fn check_keys(value: &JsValue, path: &str, keys: &[&str], also: &[&str]) -> Result<(), LoaderError> {
    let object: &Object = value.dyn_ref().filter(|_| value.is_object()).ok_or_else(|| invalid(path, "an object"))?;
    for key in Object::keys(object).iter().filter_map(|k| k.as_string()) {
        if !keys.contains(&key.as_str()) && !also.contains(&key.as_str()) {
            let expected: Vec<&str> = keys.iter().chain(also).copied().collect();
            return Err(invalid(
                &format!("{path}.{key}"),
                &format!("one of the known keys ({}), not an unknown one", expected.join(", ")),
            ));
        }
    }
    Ok(())
}

/// `target[key]`, `undefined` when absent or unreadable.
pub(crate) fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// `INVALID_ARGUMENT` for the value at `path`, which should have been `expected`.
pub(crate) fn invalid(path: &str, expected: &str) -> LoaderError {
    LoaderError::InvalidArgument { path: path.to_string(), expected: expected.to_string() }
}

/// UTF-8 through the browser's own encoder and decoder, so that text on its way to or from
/// a guest is never copied through the loader's memory.
pub(crate) mod utf8 {
    use js_sys::{JsString, Uint8Array};
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        type TextEncoder;
        #[wasm_bindgen(constructor)]
        fn new() -> TextEncoder;
        #[wasm_bindgen(method)]
        fn encode(this: &TextEncoder, input: &JsString) -> Uint8Array;

        type TextDecoder;
        #[wasm_bindgen(constructor, catch)]
        fn new(label: &str, options: &JsValue) -> Result<TextDecoder, JsValue>;
        #[wasm_bindgen(method, catch)]
        fn decode(this: &TextDecoder, input: &Uint8Array) -> Result<JsString, JsValue>;
    }

    thread_local! {
        static ENCODER: TextEncoder = TextEncoder::new();
        // `fatal`: malformed input is an error, not U+FFFD.
        static DECODER: Option<TextDecoder> = {
            let options = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&options, &"fatal".into(), &JsValue::TRUE);
            TextDecoder::new("utf-8", &options).ok()
        };
    }

    /// `text` as UTF-8.
    pub(crate) fn encode(text: &JsString) -> Uint8Array {
        ENCODER.with(|e| e.encode(text))
    }

    /// The text `bytes` spell, or `None` unless they are valid UTF-8.
    pub(crate) fn decode(bytes: &Uint8Array) -> Option<JsString> {
        DECODER.with(|d| d.as_ref()?.decode(bytes).ok())
    }
}
