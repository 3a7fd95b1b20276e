//! What the protocols' settings share: [`ConfigError`], and the macro that writes a getter and
//! a validated setter for each setting.

use core::fmt;

/// Why a setting was refused.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The value is outside the range the setting accepts.
    #[error("{setting} must be {expected}, got {got}")]
    OutOfRange {
        /// The setting's name.
        setting: &'static str,
        /// The accepted range, in words.
        expected: &'static str,
        /// The refused value, printed.
        got: alloc::string::String,
    },
}

#[doc(hidden)]
pub(crate) fn out_of_range(
    setting: &'static str,
    expected: &'static str,
    got: impl fmt::Debug,
) -> ConfigError {
    ConfigError::OutOfRange { setting, expected, got: alloc::format!("{got:?}") }
}

/// Generates a getter and a validated setter for each setting of a `Config` struct.
macro_rules! settings {
    ($(
        $(#[$doc:meta])*
        $name:ident / $setter:ident : $ty:ty, $expected:literal, |$v:ident| $valid:expr;
    )*) => {
        impl Config {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> $ty {
                    self.$name.clone()
                }

                #[doc = concat!("Sets [`", stringify!($name), "`](Self::", stringify!($name), ").")]
                ///
                /// # Errors
                ///
                #[doc = concat!("[`ConfigError::OutOfRange`]($crate::config::ConfigError::OutOfRange) unless the value is ", $expected, ".")]
                pub fn $setter(&mut self, value: $ty) -> Result<&mut Self, $crate::config::ConfigError> {
                    let $v = &value;
                    if !$valid {
                        return Err($crate::config::out_of_range(stringify!($name), $expected, $v));
                    }
                    self.$name = value;
                    Ok(self)
                }
            )*
        }
    };
}

pub(crate) use settings;
