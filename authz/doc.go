// Package authz will hold JWT verification, the casbin model and its etcd policy
// store, and the middleware every management route goes through. Until then the
// API serves the "default" tenant without authentication.
package authz
