//! Bookeo's permissions as a type: `<area>_<rights>_<reach>` plus the two
//! exceptions, `availability_r` and `subaccounts_rw`.
//!
//! Rights are ordered `r` ⊂ `rw` ⊂ `rwd`, reach `own` ⊂ `all` ("any all
//! permission implies the corresponding own one"), so one permission implies
//! another of its area exactly when it has at least its rights and at least
//! its reach. Only the combinations the vendor offers exist: there is no
//! `_r_own`, and payments have only `rw_own`, `r_all` and `rw_all`.

use std::{fmt, str::FromStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Area {
    Customers,
    Bookings,
    Blocks,
    Payments,
    Availability,
    Subaccounts,
}

/// `r` ⊂ `rw` ⊂ `rwd` (for bookings, `d` is cancel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rights {
    R,
    Rw,
    Rwd,
}

/// `own` (records the application created) ⊂ `all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reach {
    Own,
    All,
}

impl Area {
    pub const ALL: [Area; 6] = [
        Area::Customers,
        Area::Bookings,
        Area::Blocks,
        Area::Payments,
        Area::Availability,
        Area::Subaccounts,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Area::Customers => "customers",
            Area::Bookings => "bookings",
            Area::Blocks => "blocks",
            Area::Payments => "payments",
            Area::Availability => "availability",
            Area::Subaccounts => "subaccounts",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Area::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Whether the area's permissions have a reach (all but the exceptions).
    fn has_reach(self) -> bool {
        !matches!(self, Area::Availability | Area::Subaccounts)
    }
}

impl Rights {
    pub const ALL: [Rights; 3] = [Rights::R, Rights::Rw, Rights::Rwd];

    pub fn name(self) -> &'static str {
        match self {
            Rights::R => "r",
            Rights::Rw => "rw",
            Rights::Rwd => "rwd",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Rights::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl Reach {
    pub fn name(self) -> &'static str {
        match self {
            Reach::Own => "own",
            Reach::All => "all",
        }
    }
}

/// One permission the vendor offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    pub area: Area,
    pub rights: Rights,
    /// `None` for `availability_r` and `subaccounts_rw`.
    pub reach: Option<Reach>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    #[error("unknown area {0:?} (expected customers, bookings, blocks, payments, availability or subaccounts)")]
    Area(String),
    #[error("unknown rights {0:?} (expected r, rw or rwd)")]
    Rights(String),
    #[error("unknown reach {0:?} (expected own or all)")]
    Reach(String),
    #[error("{0:?} is not a permission the vendor offers")]
    NotOffered(String),
    #[error("{0:?} is not of the form <area>_<rights>_<reach>")]
    Shape(String),
}

impl Permission {
    /// Whether the vendor offers this combination.
    fn offered(area: Area, rights: Rights, reach: Option<Reach>) -> bool {
        use {Area::*, Reach::*, Rights::*};
        match (area, reach) {
            (Availability, None) => rights == R,
            (Subaccounts, None) => rights == Rw,
            (Availability | Subaccounts, Some(_)) | (_, None) => false,
            (Payments, Some(Own)) => rights == Rw,
            (Payments, Some(All)) => rights != Rwd,
            (_, Some(Own)) => rights != R,
            (_, Some(All)) => true,
        }
    }

    /// Every permission the vendor offers.
    pub fn every() -> Vec<Permission> {
        let mut all = Vec::new();
        for area in Area::ALL {
            for rights in Rights::ALL {
                for reach in [None, Some(Reach::Own), Some(Reach::All)] {
                    if Self::offered(area, rights, reach) {
                        all.push(Permission {
                            area,
                            rights,
                            reach,
                        });
                    }
                }
            }
        }
        all
    }

    /// Whether holding `self` grants everything `other` grants.
    pub fn implies(self, other: Permission) -> bool {
        self.area == other.area && self.rights >= other.rights && self.reach >= other.reach
    }

    /// `self` and every permission it implies, in a stable order.
    pub fn expand(self) -> Vec<Permission> {
        Self::every()
            .into_iter()
            .filter(|p| self.implies(*p))
            .collect()
    }
}

impl FromStr for Permission {
    type Err = PermissionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('_');
        let (Some(area), Some(rights)) = (parts.next(), parts.next()) else {
            return Err(PermissionError::Shape(s.into()));
        };
        let reach = parts.next();
        if parts.next().is_some() {
            return Err(PermissionError::Shape(s.into()));
        }
        let area = Area::parse(area).ok_or_else(|| PermissionError::Area(area.into()))?;
        let rights = Rights::parse(rights).ok_or_else(|| PermissionError::Rights(rights.into()))?;
        let reach = match reach {
            None => None,
            Some("own") => Some(Reach::Own),
            Some("all") => Some(Reach::All),
            Some(other) => return Err(PermissionError::Reach(other.into())),
        };
        if reach.is_none() && area.has_reach() {
            return Err(PermissionError::Shape(s.into()));
        }
        if !Self::offered(area, rights, reach) {
            return Err(PermissionError::NotOffered(s.into()));
        }
        Ok(Permission {
            area,
            rights,
            reach,
        })
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.area.name(), self.rights.name())?;
        if let Some(r) = self.reach {
            write!(f, "_{}", r.name())?;
        }
        Ok(())
    }
}

/// What a request needs: rights in an area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    pub area: Area,
    pub rights: Rights,
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.area.name(), self.rights.name())
    }
}

impl Need {
    /// How far a set of (expanded or not) grants reaches for this need:
    /// `Some(All)` when a permission with at least the rights reaches all
    /// (or has no reach), `Some(Own)` when only own ones do, `None` when
    /// nothing grants it.
    pub fn reach_in(self, grants: &[Permission]) -> Option<Reach> {
        grants
            .iter()
            .filter(|p| p.area == self.area && p.rights >= self.rights)
            .map(|p| p.reach.unwrap_or(Reach::All))
            .max()
    }
}

/// A route's requirement: an area with rights from the method, or fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `GET`/`HEAD`/`OPTIONS` read, `POST`/`PUT`/`PATCH` write, `DELETE`
    /// (and any other method) delete.
    ByMethod(Area),
    Fixed(Need),
}

impl Requirement {
    /// `bookings` (rights by method) or `bookings:rw`.
    pub fn parse(s: &str) -> Result<Self, PermissionError> {
        let (area, rights) = match s.split_once(':') {
            Some((a, r)) => (a, Some(r)),
            None => (s, None),
        };
        let area = Area::parse(area).ok_or_else(|| PermissionError::Area(area.into()))?;
        match rights {
            None => Ok(Requirement::ByMethod(area)),
            Some(r) => Ok(Requirement::Fixed(Need {
                area,
                rights: Rights::parse(r).ok_or_else(|| PermissionError::Rights(r.into()))?,
            })),
        }
    }

    /// The need of a request with `method`.
    pub fn need(self, method: &http::Method) -> Need {
        match self {
            Requirement::Fixed(n) => n,
            Requirement::ByMethod(area) => Need {
                area,
                rights: rights_of(method),
            },
        }
    }
}

/// The rights a method needs by default.
pub fn rights_of(method: &http::Method) -> Rights {
    use http::Method;
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => Rights::R,
        Method::POST | Method::PUT | Method::PATCH => Rights::Rw,
        _ => Rights::Rwd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The vendor's list, verbatim.
    const VENDOR: &[&str] = &[
        "customers_rw_own",
        "customers_rwd_own",
        "customers_r_all",
        "customers_rw_all",
        "customers_rwd_all",
        "bookings_rw_own",
        "bookings_rwd_own",
        "bookings_r_all",
        "bookings_rw_all",
        "bookings_rwd_all",
        "blocks_rw_own",
        "blocks_rwd_own",
        "blocks_r_all",
        "blocks_rw_all",
        "blocks_rwd_all",
        "payments_rw_own",
        "payments_r_all",
        "payments_rw_all",
        "availability_r",
        "subaccounts_rw",
    ];

    #[test]
    fn exactly_the_vendors_permissions_exist_and_round_trip() {
        let mut every: Vec<String> = Permission::every().iter().map(|p| p.to_string()).collect();
        let mut vendor: Vec<String> = VENDOR.iter().map(|s| s.to_string()).collect();
        every.sort();
        vendor.sort();
        assert_eq!(every, vendor);
        for name in VENDOR {
            assert_eq!(name.parse::<Permission>().unwrap().to_string(), *name);
        }
    }

    #[test]
    fn bad_names_say_what_is_wrong() {
        let e = |s: &str| s.parse::<Permission>().unwrap_err();
        assert_eq!(e("bookngs_rw_own"), PermissionError::Area("bookngs".into()));
        assert_eq!(e("bookings_w_own"), PermissionError::Rights("w".into()));
        assert_eq!(e("bookings_rw_mine"), PermissionError::Reach("mine".into()));
        assert_eq!(
            e("bookings_r_own"),
            PermissionError::NotOffered("bookings_r_own".into())
        );
        assert_eq!(
            e("payments_rwd_all"),
            PermissionError::NotOffered("payments_rwd_all".into())
        );
        assert_eq!(
            e("availability_r_all"),
            PermissionError::NotOffered("availability_r_all".into())
        );
        assert_eq!(
            e("bookings_rw"),
            PermissionError::Shape("bookings_rw".into())
        );
        assert_eq!(e("bookings"), PermissionError::Shape("bookings".into()));
        assert_eq!(
            e("bookings_rw_own_x"),
            PermissionError::Shape("bookings_rw_own_x".into())
        );
        assert_eq!(
            e("Bookings_rw_own"),
            PermissionError::Area("Bookings".into())
        );
    }

    /// The vendor's rules, written out independently of `implies`: `rwd`
    /// covers `rw` covers `r`, and an `all` permission covers the `own` one
    /// with the same rights.
    fn vendor_implies(p: &str, q: &str) -> bool {
        let split = |s: &str| -> (String, usize, usize) {
            let mut it = s.split('_');
            let area = it.next().unwrap().to_string();
            let rights = match it.next().unwrap() {
                "r" => 0,
                "rw" => 1,
                _ => 2,
            };
            let reach = match it.next() {
                Some("own") => 0,
                _ => 1,
            };
            (area, rights, reach)
        };
        let (pa, pr, pe) = split(p);
        let (qa, qr, qe) = split(q);
        pa == qa && pr >= qr && pe >= qe
    }

    proptest! {
        #[test]
        fn a_permission_implies_exactly_what_the_vendor_rules_say(
            i in 0..VENDOR.len(),
            j in 0..VENDOR.len(),
        ) {
            let (p, q): (Permission, Permission) = (VENDOR[i].parse().unwrap(), VENDOR[j].parse().unwrap());
            prop_assert_eq!(p.implies(q), vendor_implies(VENDOR[i], VENDOR[j]));
            prop_assert_eq!(p.expand().contains(&q), p.implies(q));
        }

        #[test]
        fn a_need_is_granted_by_a_set_exactly_when_some_member_covers_it(
            set in proptest::collection::vec(0..VENDOR.len(), 0..5),
            area in 0..6usize,
            rights in 0..3usize,
        ) {
            let grants: Vec<Permission> = set.iter().map(|i| VENDOR[*i].parse().unwrap()).collect();
            let need = Need { area: Area::ALL[area], rights: Rights::ALL[rights] };
            let expanded: Vec<Permission> = grants.iter().flat_map(|p| p.expand()).collect();
            // Expanding first changes nothing.
            prop_assert_eq!(need.reach_in(&grants), need.reach_in(&expanded));
            let covering = |reach: Reach| grants.iter().any(|p| {
                p.area == need.area && p.rights >= need.rights && p.reach.unwrap_or(Reach::All) >= reach
            });
            let expected = if covering(Reach::All) {
                Some(Reach::All)
            } else if covering(Reach::Own) {
                Some(Reach::Own)
            } else {
                None
            };
            prop_assert_eq!(need.reach_in(&grants), expected);
        }
    }

    #[test]
    fn the_vendors_examples() {
        let p: Permission = "bookings_rw_all".parse().unwrap();
        assert!(p.implies("bookings_rw_own".parse().unwrap()));
        assert!(p.implies("bookings_r_all".parse().unwrap()));
        assert!(!p.implies("bookings_rwd_own".parse().unwrap()));
        assert!(!p.implies("customers_r_all".parse().unwrap()));
        let names: Vec<String> = p.expand().iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            ["bookings_r_all", "bookings_rw_own", "bookings_rw_all"]
        );
    }

    #[test]
    fn requirements_by_method_and_fixed() {
        use http::Method;
        let by = Requirement::parse("bookings").unwrap();
        assert_eq!(by.need(&Method::GET).to_string(), "bookings:r");
        assert_eq!(by.need(&Method::PATCH).to_string(), "bookings:rw");
        assert_eq!(by.need(&Method::DELETE).to_string(), "bookings:rwd");
        assert_eq!(
            by.need(&Method::from_bytes(b"PURGE").unwrap()).to_string(),
            "bookings:rwd"
        );
        let fixed = Requirement::parse("payments:rw").unwrap();
        assert_eq!(fixed.need(&Method::GET).to_string(), "payments:rw");
        assert!(Requirement::parse("bookings:x").is_err());
        assert!(Requirement::parse("rooms").is_err());
    }
}
