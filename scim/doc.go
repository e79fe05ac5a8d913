// Package scim is Verdict's SCIM 2.0 service provider (RFC 7643, RFC
// 7644): Users and Groups that identity providers (Okta, Entra ID, Google)
// push, kept in the store's directory so that policies can look them up.
//
// The protocol (routing, schema validation of resources, filter and PATCH
// parsing, paging, /Schemas,
// /ResourceTypes, /ServiceProviderConfig, the error shape) is
// github.com/elimity-com/scim, a maintained library whose tests include
// Okta's and Entra ID's documented request shapes. This package supplies
// its resource handlers: storage with unique userNames and group names,
// versions as ETags with If-Match, group memberships shown on users, and
// the application of PATCH operations, and bounds on a filter's length
// and nesting before it is parsed. It is a net/http handler; the
// server mounts it under /scim/v2 behind the verdict:scim scope.
package scim
