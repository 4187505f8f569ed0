//! The PromQL functions of Prometheus 2.42, by family.

pub(crate) mod date;
pub(crate) mod histogram;
pub(crate) mod instant;
pub(crate) mod labels;
pub(crate) mod range;

use super::plan::ValueKind;

macro_rules! functions {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// A function Prometheus 2.42 knows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Func {
            $($variant),*
        }

        impl Func {
            /// The function of that name, if Prometheus 2.42 has it.
            pub(crate) fn from_name(name: &str) -> Option<Func> {
                match name {
                    $($name => Some(Func::$variant),)*
                    _ => None,
                }
            }

            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Func::$variant => $name),*
                }
            }
        }
    };
}

functions! {
    Abs => "abs", Absent => "absent", AbsentOverTime => "absent_over_time",
    Acos => "acos", Acosh => "acosh", Asin => "asin", Asinh => "asinh", Atan => "atan",
    Atanh => "atanh", AvgOverTime => "avg_over_time", Ceil => "ceil", Changes => "changes",
    Clamp => "clamp", ClampMax => "clamp_max", ClampMin => "clamp_min", Cos => "cos",
    Cosh => "cosh", CountOverTime => "count_over_time", DaysInMonth => "days_in_month",
    DayOfMonth => "day_of_month", DayOfWeek => "day_of_week", DayOfYear => "day_of_year",
    Deg => "deg", Delta => "delta", Deriv => "deriv", Exp => "exp", Floor => "floor",
    HistogramCount => "histogram_count", HistogramFraction => "histogram_fraction",
    HistogramQuantile => "histogram_quantile", HistogramSum => "histogram_sum",
    HoltWinters => "holt_winters", Hour => "hour", Idelta => "idelta", Increase => "increase",
    Irate => "irate", LabelReplace => "label_replace", LabelJoin => "label_join", Ln => "ln",
    Log10 => "log10", Log2 => "log2", LastOverTime => "last_over_time",
    MaxOverTime => "max_over_time", MinOverTime => "min_over_time", Minute => "minute",
    Month => "month", Pi => "pi", PredictLinear => "predict_linear",
    PresentOverTime => "present_over_time", QuantileOverTime => "quantile_over_time",
    Rad => "rad", Rate => "rate", Resets => "resets", Round => "round", Scalar => "scalar",
    Sgn => "sgn", Sin => "sin", Sinh => "sinh", Sort => "sort", SortDesc => "sort_desc",
    Sqrt => "sqrt", StddevOverTime => "stddev_over_time", StdvarOverTime => "stdvar_over_time",
    SumOverTime => "sum_over_time", Tan => "tan", Tanh => "tanh", Time => "time",
    Timestamp => "timestamp", Vector => "vector", Year => "year",
}

impl Func {
    /// The type of the function's result.
    pub(crate) fn return_kind(self) -> ValueKind {
        match self {
            Func::Time | Func::Pi | Func::Scalar => ValueKind::Scalar,
            _ => ValueKind::Vector,
        }
    }

    /// The calendar functions (`hour()`, `year()`, ...).
    pub(crate) fn is_date(self) -> bool {
        matches!(
            self,
            Func::DaysInMonth
                | Func::DayOfMonth
                | Func::DayOfWeek
                | Func::DayOfYear
                | Func::Hour
                | Func::Minute
                | Func::Month
                | Func::Year
        )
    }

    /// Functions whose result depends on the evaluation time even when their arguments do
    /// not (Prometheus' `AtModifierUnsafeFunctions`).
    pub(crate) fn is_at_modifier_unsafe(self) -> bool {
        self.is_date() || matches!(self, Func::PredictLinear | Func::Time | Func::Timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_newer_functions_are_unknown() {
        for name in [
            "rate",
            "holt_winters",
            "label_join",
            "histogram_quantile",
            "pi",
        ] {
            assert_eq!(Func::from_name(name).map(Func::name), Some(name));
        }
        for name in [
            "sort_by_label",
            "double_exponential_smoothing",
            "info",
            "mad_over_time",
        ] {
            assert_eq!(Func::from_name(name), None);
        }
    }
}
