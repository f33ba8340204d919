package web

import "net/http"

// kbSuggestRoutes serves the submit form's live suggestions and the ticket
// page's "this article solved it".
func (s *Server) kbSuggestRoutes(mux *http.ServeMux) {}
