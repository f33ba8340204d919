package web

import "net/http"

// kbRoutes serves the knowledge base's public pages.
func (s *Server) kbRoutes(mux *http.ServeMux) {}
