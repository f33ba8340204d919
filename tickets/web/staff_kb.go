package web

import "net/http"

// staffKBRoutes serves the staff's knowledge base pages.
func (s *Server) staffKBRoutes(mux *http.ServeMux) {}
